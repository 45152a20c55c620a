/*
 * common/version.h — the service's version, reported by /health.
 */
#ifndef FI_VERSION_H
#define FI_VERSION_H

#define FINTEGRATE_VERSION "0.1.0"

#endif
