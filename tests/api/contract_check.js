#!/usr/bin/env node
// tests/api/contract_check.js — the live service against docs/openapi.json.
//
// Run by scripts/test.sh against the running test stack (after the C
// integration binaries, so the database also holds everything they made):
// FINTEGRATE_BASE_URL and FINTEGRATE_ADMIN_API_KEY come from the stack.
//
// It sends a representative request to every endpoint — successes and the
// errors each can give (400, 401, 403, 404, 405, 409, 413, 422; nginx's own
// 401/405/413 included) — chained like a real client (consumer → key →
// customer → tags → snapshot → events → confirm-delivery → re-drive →
// deactivation), and for every response checks that
//   * its status is documented for that operation (an unknown path must be
//     the NotFound response, a known path with another method the
//     MethodNotAllowed one),
//   * its Content-Type is one the document gives, and its body validates
//     against the documented schema (ajv, JSON Schema 2020-12 as OpenAPI 3.1
//     says) — the envelope, detail.status_code equal to the real status,
//     every field of data, no undocumented field,
//   * it carries X-Request-ID (and Allow on 405).
// Every request is also checked against the documented request schema: a
// success must come from a request the document calls valid, and a request
// the document calls invalid must be refused (400/422).  GET /events as the
// administrator (limit 1000) validates every event the integration suite left
// in the outbox, payloads included.
//
// Output: one "ok"/"not ok" line per check, then "N passed, N failed".
'use strict';

const fs = require('fs');
const path = require('path');
const http = require('http');
const crypto = require('crypto');
const Ajv2020 = require('ajv/dist/2020').default;

const ROOT = path.resolve(__dirname, '..', '..');
const BASE = process.env.FINTEGRATE_BASE_URL || 'http://127.0.0.1:18080';
const ADMIN = process.env.FINTEGRATE_ADMIN_API_KEY;
if (!ADMIN) {
  console.error('contract_check: FINTEGRATE_ADMIN_API_KEY is not set');
  process.exit(2);
}

const docText = fs.readFileSync(path.join(ROOT, 'docs', 'openapi.json'), 'utf8');
const yamlText = fs.readFileSync(path.join(ROOT, 'docs', 'openapi.yaml'), 'utf8');
const doc = JSON.parse(docText);

const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
ajv.addSchema(doc, 'openapi');
const validators = new Map();
function validatorFor(pointer) {
  if (!validators.has(pointer)) {
    validators.set(pointer, ajv.compile({ $ref: 'openapi#' + pointer }));
  }
  return validators.get(pointer);
}
const esc = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------
function request(method, urlPath, opts = {}) {
  const url = new URL(BASE + urlPath);
  if (opts.query) {
    for (const [k, v] of Object.entries(opts.query)) {
      for (const item of Array.isArray(v) ? v : [v]) url.searchParams.append(k, String(item));
    }
  }
  let body = null;
  if (opts.raw !== undefined) body = Buffer.from(opts.raw);
  else if (opts.body !== undefined) body = Buffer.from(JSON.stringify(opts.body));
  const headers = { Accept: 'application/json', ...(opts.headers || {}) };
  if (opts.key) headers['X-API-Key'] = opts.key;
  if (body) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = body.length;
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, timeout: 30000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch (e) {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json, url });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: timed out`)));
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

// ---------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------
function deref(obj, pointer) {
  // Follows a local $ref (one level, as the document uses them); returns the
  // object and the JSON pointer it lives at.
  if (obj && obj.$ref) {
    const p = obj.$ref.replace(/^#/, '');
    const target = p.split('/').slice(1).reduce((o, k) => o[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
    return { obj: target, pointer: p };
  }
  return { obj, pointer };
}

// The documented response for (method, path, status): the operation's own,
// or the generic 404/405 when the service has no such operation.
function documentedResponse(method, urlPath, status) {
  const item = doc.paths[urlPath];
  const m = method.toLowerCase();
  if (!item) {
    return status === 404
      ? { ...deref({ $ref: '#/components/responses/NotFound' }), where: 'unknown path' }
      : { error: `${method} ${urlPath}: unknown path must answer 404, not ${status}` };
  }
  const op = item[m];
  if (!op) {
    return status === 405 || status === 401
      ? { ...deref({ $ref: `#/components/responses/${status === 405 ? 'MethodNotAllowed' : 'Unauthorized'}` }), where: 'other method' }
      : { error: `${method} ${urlPath}: a method the path does not list must answer 405, not ${status}` };
  }
  const base = `/paths/${esc(urlPath)}/${m}/responses`;
  const r = op.responses[String(status)];
  if (!r) return { error: `${method} ${urlPath}: status ${status} is not documented (documented: ${Object.keys(op.responses).join(', ')})` };
  return { ...deref(r, `${base}/${status}`), where: 'operation' };
}

// The request, checked against the document: returns a list of problems
// (empty when the document calls it valid).
function requestProblems(method, urlPath, opts) {
  const op = (doc.paths[urlPath] || {})[method.toLowerCase()];
  if (!op) return ['no such operation'];
  const problems = [];
  const m = method.toUpperCase();
  const params = (op.parameters || []).map((p) => deref(p).obj).filter((p) => p.in === 'query');
  const useBody = opts.raw !== undefined || opts.body !== undefined;
  if (useBody) {
    const rb = op.requestBody && op.requestBody.content && op.requestBody.content['application/json'];
    if (!rb) return ['the operation takes no body'];
    if (opts.raw !== undefined) {
      try {
        opts = { ...opts, body: JSON.parse(opts.raw) };
      } catch (e) {
        return ['body is not JSON'];
      }
    }
    const v = validatorFor(`/paths/${esc(urlPath)}/${m.toLowerCase()}/requestBody/content/application~1json/schema`);
    if (!v(opts.body)) problems.push(...v.errors.map((e) => `body${e.instancePath} ${e.message}`));
    return problems;
  }
  if (op.requestBody && op.requestBody.required) return ['missing required body'];
  const q = opts.query || {};
  for (const name of Object.keys(q)) {
    if (!params.find((p) => p.name === name)) problems.push(`unknown query parameter ${name}`);
  }
  params.forEach((p) => {
    if (!(p.name in q)) {
      if (p.required) problems.push(`missing query parameter ${p.name}`);
      return;
    }
    let value = q[p.name];
    const schema = deref(p.schema).obj;
    if (schema.type === 'array') {
      value = [].concat(value).flatMap((s) => String(s).split(','));
    } else if (schema.type === 'integer') {
      value = /^-?[0-9]+$/.test(String(value)) ? Number(value) : String(value);
    }
    const idx = op.parameters.findIndex((x) => deref(x).obj === p);
    const pv = validatorFor(op.parameters[idx].$ref
      ? op.parameters[idx].$ref.replace(/^#/, '') + '/schema'
      : `/paths/${esc(urlPath)}/${m.toLowerCase()}/parameters/${idx}/schema`);
    if (!pv(value)) problems.push(...pv.errors.map((e) => `${p.name}${e.instancePath} ${e.message}`));
  });
  return problems;
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------
let passed = 0;
let failed = 0;
function report(ok, name, why) {
  if (ok) {
    passed++;
    console.log(`ok ${passed + failed} - ${name}`);
  } else {
    failed++;
    console.log(`not ok ${passed + failed} - ${name}`);
    for (const line of [].concat(why)) console.log(`    ${line}`);
  }
}

// call — one request; validates request and response against the document.
// `expect` is the status the contract says this request must get.
async function call(name, method, urlPath, opts, expect) {
  let res;
  try {
    res = await request(method, urlPath, opts);
  } catch (e) {
    report(false, name, String(e));
    return { status: 0 };
  }
  const why = [];
  if (res.status !== expect) why.push(`status ${res.status}, expected ${expect}: ${res.text.slice(0, 300)}`);
  if (!res.headers['x-request-id']) why.push('no X-Request-ID header');

  const doc = documentedResponse(method, urlPath, res.status);
  if (doc.error) {
    why.push(doc.error);
  } else {
    const ctype = String(res.headers['content-type'] || '').split(';')[0].trim();
    const content = doc.obj.content || {};
    if (!content[ctype]) {
      why.push(`Content-Type ${ctype || '(none)'} is not documented (${Object.keys(content).join(', ')})`);
    } else if (ctype === 'application/json') {
      if (res.json === undefined) {
        why.push('body is not JSON');
      } else {
        const v = validatorFor(`${doc.pointer}/content/${esc(ctype)}/schema`);
        if (!v(res.json)) {
          why.push(...v.errors.slice(0, 8).map((e) => `response${e.instancePath} ${e.message}` +
            (e.params && e.params.additionalProperty ? ` (${e.params.additionalProperty})` : '') +
            (e.params && e.params.allowedValue !== undefined ? ` (${JSON.stringify(e.params.allowedValue)})` : '')));
        }
        if (res.json.detail && res.json.detail.status_code !== String(res.status)) {
          why.push(`detail.status_code ${JSON.stringify(res.json.detail.status_code)} differs from the status ${res.status}`);
        }
      }
    }
    for (const h of Object.keys((doc.obj.headers || {}))) {
      if (h === 'Retry-After' || h === 'Allow') {
        if (!res.headers[h.toLowerCase()]) why.push(`no ${h} header`);
      }
    }
    if (res.headers['idempotent-replayed'] !== undefined &&
        !Object.keys(doc.obj.headers || {}).includes('Idempotent-Replayed')) {
      why.push('an Idempotent-Replayed header the document does not give for this response');
    }
  }

  // The request against the documented request rules.
  if (doc.where === 'operation') {
    const problems = requestProblems(method, urlPath, opts);
    if (res.status >= 200 && res.status < 300 && problems.length) {
      why.push(`the service accepted a request the document calls invalid: ${problems.join('; ')}`);
    }
    if (problems.length && ![400, 401, 403, 404, 405, 413, 422].includes(res.status) &&
        !(res.status >= 200 && res.status < 300)) {
      why.push(`a request the document calls invalid got ${res.status}`);
    }
  }
  report(why.length === 0, `${name}: ${method} ${urlPath} → ${res.status}`, why);
  return res;
}

const uuid = () => crypto.randomUUID();
const tag = crypto.randomBytes(4).toString('hex');

async function main() {
  console.log(`contract check of ${BASE} against docs/openapi.json`);
  const J = (r) => (r.json && r.json.data) || {};

  // --- service endpoints ------------------------------------------------------
  await call('health without a key', 'GET', '/health', {}, 200);
  let r = await call('openapi.json without a key', 'GET', '/openapi.json', {}, 200);
  report(r.text === docText, 'GET /openapi.json serves docs/openapi.json byte for byte',
         'differs from docs/openapi.json (stack started from another checkout?)');
  r = await call('openapi.yaml without a key', 'GET', '/openapi.yaml', {}, 200);
  report(r.text === yamlText, 'GET /openapi.yaml serves docs/openapi.yaml byte for byte', 'differs');
  await call('openapi.json takes GET only', 'POST', '/openapi.json', { key: ADMIN, body: {} }, 405);
  r = await call('metrics', 'GET', '/metrics', {}, 200);
  if (r.status === 200) {
    const families = ['fintegrate_http_requests_total', 'fintegrate_http_request_duration_seconds',
      'fintegrate_events_published_total', 'fintegrate_publish_failures_total',
      'fintegrate_delivery_confirms_total', 'fintegrate_circuit_breaker_state',
      'fintegrate_outbox_pending', 'fintegrate_outbox_failed', 'fintegrate_events_undelivered',
      'fintegrate_delivery_lag_seconds', 'fintegrate_worker_restarts_total'];
    const missing = families.filter((f) => !new RegExp(`^# TYPE ${f} `, 'm').test(r.text));
    report(missing.length === 0, 'GET /metrics has every family the document names', `missing: ${missing.join(', ')}`);
  }
  await call('POST /health without a key is nginx 401', 'POST', '/health', {}, 401);

  // --- nginx and routing --------------------------------------------------------
  await call('no key (nginx)', 'GET', '/customer/data', { query: { customer_id: uuid() } }, 401);
  await call('unknown key', 'GET', '/customer/data', { key: 'fk_' + 'x'.repeat(43), query: { customer_id: uuid() } }, 401);
  await call('unknown path', 'GET', '/no/such/path', { key: ADMIN }, 404);
  r = await call('known path, other method', 'PUT', '/customer/data', { key: ADMIN, body: {} }, 405);
  await call('body over 64 KiB (nginx)', 'POST', '/customer/data', { key: ADMIN, raw: JSON.stringify({ name: 'x'.repeat(70000) }) }, 413);

  // --- consumers and keys ------------------------------------------------------------
  const cname = `ct_${tag}`;
  r = await call('create consumer', 'POST', '/consumer/data', { key: ADMIN, body: { consumer_name: cname } }, 201);
  const consumerId = J(r).consumer_id;
  await call('consumer name taken', 'POST', '/consumer/data', { key: ADMIN, body: { consumer_name: cname } }, 409);
  await call('bad consumer name', 'POST', '/consumer/data', { key: ADMIN, body: { consumer_name: 'Bad Name' } }, 422);
  await call('empty body', 'POST', '/consumer/data', { key: ADMIN, raw: '' }, 400);
  r = await call('issue key', 'POST', '/consumer/api-key', { key: ADMIN, body: { consumer_id: consumerId, expires_in_days: 30 } }, 201);
  let key = J(r).api_key;
  await call('issue key: days and seconds', 'POST', '/consumer/api-key',
    { key: ADMIN, body: { consumer_id: consumerId, expires_in_days: 1, expires_in_seconds: 60 } }, 422);
  await call('issue key: unknown consumer', 'POST', '/consumer/api-key', { key: ADMIN, body: { consumer_id: uuid() } }, 404);
  await call('read consumer (admin)', 'GET', '/consumer/data', { key: ADMIN, query: { consumer_id: consumerId } }, 200);
  await call('read consumer (self)', 'GET', '/consumer/data', { key, query: { consumer_id: consumerId } }, 200);
  await call('read another consumer', 'GET', '/consumer/data', { key, query: { consumer_id: '00000000-0000-0000-0000-000000000001' } }, 403);
  await call('read unknown consumer', 'GET', '/consumer/data', { key: ADMIN, query: { consumer_id: uuid() } }, 404);
  await call('read key (admin)', 'GET', '/consumer/api-key', { key: ADMIN, query: { api_key: key } }, 200);
  await call('read key (self)', 'GET', '/consumer/api-key', { key, query: { api_key: key } }, 200);
  await call('read unknown key', 'GET', '/consumer/api-key', { key: ADMIN, query: { api_key: 'fk_nope' } }, 404);
  await call('consumer endpoint as a consumer', 'POST', '/consumer/data', { key, body: { consumer_name: `${cname}x` } }, 403);

  // --- customers -------------------------------------------------------------------
  r = await call('create customer', 'POST', '/customer/data',
    { key, body: { name: '  Ada Lovelace  ', tags: { segment: 'retail', 'risk.level': 'low' } } }, 201);
  const cid = J(r).customer_id;
  const creationEvent = J(r).event_id;
  await call('create customer: missing name, unknown field', 'POST', '/customer/data', { key, body: { nmae: 'x' } }, 422);

  // --- safe retries: Idempotency-Key (docs/API.md §6) ---------------------------------------
  {
    const ik = { 'Idempotency-Key': uuid() };
    const body = { name: `retry ${tag}`, status: 'INACTIVE' };
    const first = await call('create with an Idempotency-Key', 'POST', '/customer/data', { key, body, headers: ik }, 201);
    const again = await call('the same call again (a retry)', 'POST', '/customer/data',
      { key, raw: JSON.stringify({ status: 'INACTIVE', name: body.name }), headers: ik }, 201);
    report(again.headers && again.headers['idempotent-replayed'] === 'true' && again.text === first.text,
      'a retry gets the stored answer byte for byte, with Idempotent-Replayed: true',
      `Idempotent-Replayed ${again.headers && again.headers['idempotent-replayed']}; bodies ${again.text === first.text ? 'equal' : 'differ'}`);
    await call('the key for another request', 'POST', '/customer/data', { key, body: { name: 'other' }, headers: ik }, 422);
    await call('an invalid Idempotency-Key', 'POST', '/customer/data', { key, body, headers: { 'Idempotency-Key': 'a b' } }, 422);
    const sk = { 'Idempotency-Key': uuid() };
    const scBody = { customer_id: J(first).customer_id, status: 'ACTIVE' };
    const sc = await call('status change with an Idempotency-Key', 'PATCH', '/customer/change-status', { key, body: scBody, headers: sk }, 200);
    const sc2 = await call('status change retried', 'PATCH', '/customer/change-status', { key, body: scBody, headers: sk }, 200);
    report(sc2.text === sc.text, 'a retried status change gets the same answer', 'bodies differ');
    await call('issue key with an Idempotency-Key', 'POST', '/consumer/api-key',
      { key: ADMIN, body: { consumer_id: consumerId }, headers: { 'Idempotency-Key': uuid() } }, 422);
  }
  await call('create customer: bad status', 'POST', '/customer/data', { key, body: { name: 'x', status: 'japapa' } }, 422);
  await call('create customer: not JSON', 'POST', '/customer/data', { key, raw: '{"name": ' }, 400);
  await call('create customer: not an object', 'POST', '/customer/data', { key, raw: '[1]' }, 400);
  await call('read customer', 'GET', '/customer/data', { key, query: { customer_id: cid } }, 200);
  await call('read customer (upper-case id)', 'GET', '/customer/data', { key, query: { customer_id: cid.toUpperCase() } }, 200);
  await call('read customer: bad id', 'GET', '/customer/data', { key, query: { customer_id: 'abc' } }, 422);
  await call('read customer: unknown', 'GET', '/customer/data', { key, query: { customer_id: uuid() } }, 404);
  await call('read customer: unknown parameter', 'GET', '/customer/data', { key, query: { customer_id: cid, x: '1' } }, 422);
  await call('change status', 'PATCH', '/customer/change-status', { key, body: { customer_id: cid, status: 'INACTIVE' } }, 200);
  await call('change status: same', 'PATCH', '/customer/change-status', { key, body: { customer_id: cid, status: 'INACTIVE' } }, 409);
  await call('change status: unknown customer', 'PATCH', '/customer/change-status', { key, body: { customer_id: uuid(), status: 'ACTIVE' } }, 404);

  // --- tags ------------------------------------------------------------------------
  await call('add tags', 'POST', '/customer/tag', { key, body: { customer_id: cid, tag_keys: ['tier', 'region'], tag_values: ['gold', 'eu'] } }, 201);
  await call('add tags: key exists', 'POST', '/customer/tag', { key, body: { customer_id: cid, tag_keys: ['tier'], tag_values: ['x'] } }, 409);
  await call('add tags: length mismatch', 'POST', '/customer/tag', { key, body: { customer_id: cid, tag_keys: ['a', 'b'], tag_values: ['x'] } }, 422);
  await call('add tags: empty arrays', 'POST', '/customer/tag', { key, body: { customer_id: cid, tag_keys: [], tag_values: [] } }, 422);
  await call('add tags: unknown customer', 'POST', '/customer/tag', { key, body: { customer_id: uuid(), tag_keys: ['a'], tag_values: ['x'] } }, 404);
  await call('read tag value', 'GET', '/customer/tag-value', { key, query: { customer_id: cid, tag_key: 'tier' } }, 200);
  await call('read tag value: no such tag', 'GET', '/customer/tag-value', { key, query: { customer_id: cid, tag_key: 'nope' } }, 404);
  await call('read tag value: bad key', 'GET', '/customer/tag-value', { key, query: { customer_id: cid, tag_key: 'bad key!' } }, 422);
  await call('set tag value', 'PATCH', '/customer/tag-value', { key, body: { customer_id: cid, tag_key: 'tier', new_tag_value: 'platinum' } }, 200);
  await call('set tag value: no such tag', 'PATCH', '/customer/tag-value', { key, body: { customer_id: cid, tag_key: 'nope', new_tag_value: 'x' } }, 404);
  await call('rename tag key', 'PATCH', '/customer/tag-key', { key, body: { customer_id: cid, tag_key: 'region', new_tag_key: 'geo.region' } }, 200);
  await call('rename tag key: target exists', 'PATCH', '/customer/tag-key', { key, body: { customer_id: cid, tag_key: 'tier', new_tag_key: 'segment' } }, 409);
  await call('delete tag (query)', 'DELETE', '/customer/tag', { key, query: { customer_id: cid, tag_key: 'geo.region' } }, 200);
  await call('delete tag: gone', 'DELETE', '/customer/tag', { key, body: { customer_id: cid, tag_key: 'geo.region' } }, 404);
  await call('delete tag: nothing given', 'DELETE', '/customer/tag', { key }, 422);

  // --- analytics ---------------------------------------------------------------------
  await call('snapshot', 'POST', '/customer/analytics', { key, body: { customer_id: cid } }, 201);
  await call('snapshot: unknown customer', 'POST', '/customer/analytics', { key, body: { customer_id: uuid() } }, 404);
  await call('list snapshots', 'GET', '/customer/analytics', { key, query: { customer_id: cid, limit: 10 } }, 200);
  await call('list snapshots: limit 0', 'GET', '/customer/analytics', { key, query: { customer_id: cid, limit: 0 } }, 422);
  await call('list snapshots: unknown customer', 'GET', '/customer/analytics', { key, query: { customer_id: uuid() } }, 404);

  // --- events --------------------------------------------------------------------------
  await call('list events', 'GET', '/events', { key, query: { customer_id: cid } }, 200);
  await call('list events: filters', 'GET', '/events',
    { key, query: { customer_id: cid, event_types: ['customer_creation', 'customer_tag_change'], publish_status: 'published', order: 'desc', limit: 5 } }, 200);
  await call('list events: unknown type', 'GET', '/events', { key, query: { event_types: 'customer_birthday' } }, 422);
  await call('confirm delivery', 'POST', '/events/confirm-delivery', { key, body: { event_id: creationEvent, status: 'received' } }, 200);
  await call('confirm delivery: again', 'POST', '/events/confirm-delivery', { key, body: { event_id: creationEvent, status: 'received' } }, 200);
  await call('confirm delivery: processed', 'POST', '/events/confirm-delivery',
    { key, body: { event_id: creationEvent, status: 'processed', received_at: '2025-10-23T16:34:51+02:00' } }, 200);
  await call('confirm delivery: bad status', 'POST', '/events/confirm-delivery', { key, body: { event_id: creationEvent, status: 'done' } }, 422);
  await call('confirm delivery: unknown event', 'POST', '/events/confirm-delivery', { key, body: { event_id: uuid(), status: 'received' } }, 404);
  await call('resend as a consumer', 'POST', '/events/resend', { key, body: { period_in_days: 1 } }, 403);
  await call('resend', 'POST', '/events/resend', { key: ADMIN, body: { period_in_days: 1, max_try_count: 10 } }, 200);
  await call('resend: period missing', 'POST', '/events/resend', { key: ADMIN, body: { max_try_count: 1 } }, 422);
  await call('resend: string number', 'POST', '/events/resend', { key: ADMIN, body: { period_in_days: '1' } }, 422);
  await call('redeliver', 'POST', '/events/redeliver', { key: ADMIN, body: { period_in_days: 1, consumer_id: consumerId, event_types: ['customer_status_change'] } }, 200);
  await call('redeliver: max_try_count 0', 'POST', '/events/redeliver', { key: ADMIN, body: { period_in_days: 1, max_try_count: 0 } }, 422);
  await call('outbox health', 'GET', '/events/health', { key: ADMIN }, 200);
  await call('outbox health as a consumer', 'GET', '/events/health', { key }, 403);
  // Everything the integration suite (and this check) left in the outbox.
  await call('every event in the outbox (admin)', 'GET', '/events', { key: ADMIN, query: { limit: 1000, order: 'desc' } }, 200);

  // --- deletion, history ---------------------------------------------------------------
  await call('delete customer (body)', 'DELETE', '/customer/data', { key, body: { customer_id: cid } }, 200);
  await call('delete customer: gone', 'DELETE', '/customer/data', { key, query: { customer_id: cid } }, 404);
  await call('snapshots outlive the customer', 'GET', '/customer/analytics', { key, query: { customer_id: cid } }, 200);

  // --- consumer status, rotation, deactivation -------------------------------------------
  await call('deactivate consumer', 'POST', '/consumer/change-status', { key: ADMIN, body: { consumer_id: consumerId, status: 'DEACTIVATED' } }, 200);
  await call('deactivate consumer: again', 'POST', '/consumer/change-status', { key: ADMIN, body: { consumer_id: consumerId, status: 'DEACTIVATED' } }, 409);
  await call('system consumer status', 'POST', '/consumer/change-status',
    { key: ADMIN, body: { consumer_id: '00000000-0000-0000-0000-000000000001', status: 'DEACTIVATED' } }, 403);
  await call('issue key: consumer deactivated', 'POST', '/consumer/api-key', { key: ADMIN, body: { consumer_id: consumerId } }, 409);
  await call('reactivate consumer', 'POST', '/consumer/change-status', { key: ADMIN, body: { consumer_id: consumerId, status: 'ACTIVE' } }, 200);
  await call('change status: unknown consumer', 'POST', '/consumer/change-status', { key: ADMIN, body: { consumer_id: uuid(), status: 'ACTIVE' } }, 404);
  r = await call('rotate key', 'POST', '/consumer/api-key', { key: ADMIN, body: { consumer_id: consumerId, expires_in_seconds: 3600 } }, 201);
  const key2 = J(r).api_key;
  await call('read the rotated-out key', 'GET', '/consumer/api-key', { key: ADMIN, query: { api_key: key } }, 200);
  await call('deactivate key', 'POST', '/consumer/deactivate-api-key', { key: ADMIN, body: { api_key: key2 } }, 200);
  await call('deactivate key: again', 'POST', '/consumer/deactivate-api-key', { key: ADMIN, body: { api_key: key2 } }, 409);
  await call('deactivate key: unknown', 'POST', '/consumer/deactivate-api-key', { key: ADMIN, body: { api_key: 'fk_nope' } }, 404);

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
