#!/usr/bin/env node
// tests/api/postman_run.js — the product owner's Postman collection
// (docs/postman/) against the running test stack, under newman:
//   1. the collection covers every operation of docs/openapi.json;
//   2. newman runs it with the environment file, base_url and api_key set to
//      the stack's FINTEGRATE_BASE_URL and FINTEGRATE_ADMIN_API_KEY; every
//      request asserts its status and the envelope (the collection's test
//      script).
// Ends with "N passed, N failed" (assertions, plus the coverage check).
'use strict';

const fs = require('fs');
const path = require('path');
const newman = require('newman');

const ROOT = path.resolve(__dirname, '..', '..');
const collectionPath = path.join(ROOT, 'docs', 'postman', 'fintegrate.postman_collection.json');
const environmentPath = path.join(ROOT, 'docs', 'postman', 'fintegrate.postman_environment.json');
const base = process.env.FINTEGRATE_BASE_URL;
const key = process.env.FINTEGRATE_ADMIN_API_KEY;
if (!base || !key) {
  console.error('postman_run: FINTEGRATE_BASE_URL and FINTEGRATE_ADMIN_API_KEY must be set');
  process.exit(2);
}

// 1. Coverage: every METHOD /path of the description has a request.
const doc = JSON.parse(fs.readFileSync(path.join(ROOT, 'docs', 'openapi.json'), 'utf8'));
const collection = JSON.parse(fs.readFileSync(collectionPath, 'utf8'));
const have = new Set();
(function walk(items) {
  for (const it of items) {
    if (it.item) walk(it.item);
    if (it.request) have.add(`${it.request.method} /${it.request.url.path.join('/')}`);
  }
})(collection.item);
const missing = [];
for (const [p, item] of Object.entries(doc.paths)) {
  for (const m of ['get', 'post', 'put', 'patch', 'delete']) {
    if (item[m] && !have.has(`${m.toUpperCase()} ${p}`)) missing.push(`${m.toUpperCase()} ${p}`);
  }
}
let extraFailed = 0;
if (missing.length) {
  extraFailed = 1;
  console.log(`not ok - the collection covers every operation: missing ${missing.join(', ')}`);
} else {
  console.log(`ok - the collection covers all ${have.size} endpoints' operations of docs/openapi.json`);
}

// 2. The run.
newman.run({
  collection,
  environment: environmentPath,
  envVar: [
    { key: 'base_url', value: base },
    { key: 'api_key', value: key },
  ],
  reporters: ['cli'],
  reporter: { cli: { noBanner: true } },
  color: 'off',
  timeoutRequest: 30000,
}, (err, summary) => {
  if (err) {
    console.error(`newman: ${err.message || err}`);
    process.exit(1);
  }
  const a = summary.run.stats.assertions;
  const reqFailed = summary.run.failures.filter((f) => !f.error || f.error.name !== 'AssertionError').length;
  const failedCount = a.failed + extraFailed + (reqFailed ? 1 : 0);
  const passedCount = a.total - a.failed + (extraFailed ? 0 : 1);
  console.log(`${passedCount} passed, ${failedCount} failed`);
  process.exit(failedCount === 0 ? 0 : 1);
});
