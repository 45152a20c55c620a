# Dockerfile — the Fintegrate app image: nginx in front of the FastCGI pool
# (fintegrate-fcgi under spawn-fcgi), as with `make run`.  PostgreSQL and
# RabbitMQ are separate containers (docker-compose.yml).  The entrypoint
# (docker/entrypoint.sh) applies the migrations, installs the administrator's
# key, renders nginx's config from the same templates as `make run` and starts
# both processes.
#
#   docker build -t fintegrate .
#   docker compose up -d          (the whole stack: see docs/OPERATIONS.md)

# ---- build -------------------------------------------------------------------
FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        build-essential pkg-config ca-certificates \
        libpq-dev librabbitmq-dev libfcgi-dev libjansson-dev uuid-dev \
        libssl-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY fcgi-app/ fcgi-app/
COPY common/ common/
COPY consumer/ consumer/
RUN make build

# ---- runtime -----------------------------------------------------------------
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        nginx-light spawn-fcgi postgresql-client curl ca-certificates procps \
        libpq5 librabbitmq4 libfcgi0ldbl libjansson4 libuuid1 libssl3 libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && rm -f /etc/nginx/sites-enabled/default
WORKDIR /opt/fintegrate
COPY --from=build /src/bin/fintegrate-fcgi /src/bin/fintegrate-consumer bin/
COPY scripts/ scripts/
COPY migrations/ migrations/
COPY nginx/ nginx/
COPY docs/openapi.json docs/openapi.yaml docs/
COPY docker/entrypoint.sh docker/entrypoint.sh
ENV PATH=/opt/fintegrate/bin:$PATH \
    FINTEGRATE_RUN_DIR=/var/lib/fintegrate/run \
    FINTEGRATE_HTTP_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${FINTEGRATE_HTTP_PORT}/health" || exit 1
ENTRYPOINT ["/opt/fintegrate/docker/entrypoint.sh"]
CMD ["run"]
