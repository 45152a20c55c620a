#!/usr/bin/env node
// tests/config/check_deploy.js — what can be checked of the Docker deployment
// without a Docker engine (run by tests/config/test_deploy.sh, which adds the
// promtool and nginx checks):
//   * docker-compose.yml parses (YAML, merge keys), has the five services,
//     and every file or folder it mounts or builds from exists;
//   * every COPY source of the Dockerfile exists;
//   * Prometheus scrapes services of the compose file on their ports;
//   * Grafana's provisioning parses, its dashboard folder is the one the
//     compose file mounts, and the dashboard uses the provisioned datasource;
//   * the dashboard JSON parses, and every metric its queries and the alert
//     rules name is exported: fintegrate_* by the live /metrics of the test
//     stack (FINTEGRATE_BASE_URL; the names of docs/API.md §5.8 when it does
//     not answer), rabbitmq_* by RabbitMQ's plugin (tests/config/
//     rabbitmq_metrics.txt, recorded from a real broker).
// Output: "ok"/"not ok" lines, then "N passed, N failed".
'use strict';

const fs = require('fs');
const path = require('path');
const http = require('http');
const YAML = require('yaml');

const ROOT = path.resolve(__dirname, '..', '..');
const rel = (...p) => path.join(ROOT, ...p);
let passed = 0;
let failed = 0;
function check(ok, name, why) {
  if (ok) {
    passed++;
    console.log(`ok - ${name}`);
  } else {
    failed++;
    console.log(`not ok - ${name}`);
    for (const line of [].concat(why || [])) console.log(`    ${line}`);
  }
}
function readYaml(file) {
  return YAML.parse(fs.readFileSync(rel(file), 'utf8'), { merge: true, uniqueKeys: true });
}
function tryParse(name, fn) {
  try {
    const v = fn();
    check(true, `${name} parses`);
    return v;
  } catch (e) {
    check(false, `${name} parses`, String(e.message || e));
    return undefined;
  }
}

// The metric names in a PromQL expression: identifiers that are not
// functions, keywords, label names (inside {} or by/without/on/ignoring
// lists), strings, durations or Grafana variables.
const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left',
  'group_right', 'offset', 'bool', 'inf', 'nan', 'atan2']);
function metricNames(expr) {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')   // strings
    .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, '5m')          // Grafana variables
    .replace(/\{[^}]*\}/g, '')                                 // label matchers
    .replace(/\[[^\]]*\]/g, '')                                // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set();
  const re = /([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g;
  let m;
  while ((m = re.exec(s))) {
    const [, id, call] = m;
    if (call) continue;                                        // a function
    if (KEYWORDS.has(id.toLowerCase())) continue;
    const before = s.slice(0, m.index);
    if (/[0-9.]$/.test(before)) continue;                       // 5m, 1e-9
    names.add(id);
  }
  return [...names];
}

function fetchText(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 10000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, body: '' }));
  });
}

async function main() {
  // --- docker-compose.yml --------------------------------------------------------
  const compose = tryParse('docker-compose.yml', () => readYaml('docker-compose.yml'));
  const services = (compose && compose.services) || {};
  for (const s of ['postgres', 'rabbitmq', 'app', 'prometheus', 'grafana']) {
    check(services[s], `docker-compose.yml has the ${s} service`);
  }
  const missingRefs = [];
  const mounts = {};                    // service -> [{source, target}]
  for (const [name, svc] of Object.entries(services)) {
    mounts[name] = [];
    for (const v of svc.volumes || []) {
      let source;
      let target;
      if (typeof v === 'string') {
        [source, target] = v.split(':');
      } else {
        ({ source, target } = v);
      }
      mounts[name].push({ source, target });
      if (/^[./]/.test(source) && !fs.existsSync(path.resolve(ROOT, source))) {
        missingRefs.push(`${name}: volume ${source}`);
      }
      if (!/^[./]/.test(source) && !(compose.volumes && source in compose.volumes)) {
        missingRefs.push(`${name}: named volume ${source} is not declared`);
      }
    }
    if (svc.build) {
      const ctx = typeof svc.build === 'string' ? svc.build : svc.build.context || '.';
      const file = (svc.build && svc.build.dockerfile) || 'Dockerfile';
      if (!fs.existsSync(path.resolve(ROOT, ctx))) missingRefs.push(`${name}: build context ${ctx}`);
      if (!fs.existsSync(path.resolve(ROOT, ctx, file))) missingRefs.push(`${name}: ${file}`);
    }
    for (const f of [].concat(svc.env_file || [])) {
      if (!fs.existsSync(path.resolve(ROOT, f))) missingRefs.push(`${name}: env_file ${f}`);
    }
    for (const dep of Object.keys(Array.isArray(svc.depends_on) ? Object.fromEntries(svc.depends_on.map((d) => [d, 1])) : svc.depends_on || {})) {
      if (!services[dep]) missingRefs.push(`${name}: depends_on unknown service ${dep}`);
    }
  }
  check(missingRefs.length === 0, 'every file, folder, volume and service docker-compose.yml refers to exists', missingRefs);

  // --- Dockerfile -------------------------------------------------------------------
  const dockerfile = fs.readFileSync(rel('Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const missingCopies = [];
  for (const line of dockerfile.split('\n')) {
    const m = /^\s*(COPY|ADD)\s+(.*)$/i.exec(line);
    if (!m || /--from=/.test(m[2])) continue;
    const parts = m[2].trim().split(/\s+/).filter((p) => !p.startsWith('--'));
    for (const src of parts.slice(0, -1)) {
      if (!fs.existsSync(rel(src))) missingCopies.push(src);
    }
  }
  check(missingCopies.length === 0, 'every COPY source of the Dockerfile exists', missingCopies.map((s) => `missing: ${s}`));
  const entry = /ENTRYPOINT\s+\["([^"]+)"/.exec(dockerfile);
  check(entry && /\/opt\/fintegrate\/docker\/entrypoint\.sh$/.test(entry[1]) &&
        fs.statSync(rel('docker', 'entrypoint.sh')).mode & 0o111,
        'the Dockerfile\'s ENTRYPOINT is the executable docker/entrypoint.sh');

  // --- Prometheus ----------------------------------------------------------------
  const prom = tryParse('docker/prometheus/prometheus.yml', () => readYaml('docker/prometheus/prometheus.yml'));
  if (prom) {
    const bad = [];
    for (const job of prom.scrape_configs || []) {
      for (const sc of job.static_configs || []) {
        for (const t of sc.targets || []) {
          const [host] = t.split(':');
          if (host !== 'localhost' && !services[host]) bad.push(`${job.job_name}: ${t} is not a compose service`);
        }
      }
    }
    const appJob = (prom.scrape_configs || []).find((j) => j.job_name === 'fintegrate');
    const appPort = services.app && services.app.environment && String(services.app.environment.FINTEGRATE_HTTP_PORT);
    if (!appJob || !appJob.static_configs[0].targets.includes(`app:${appPort}`)) {
      bad.push(`the fintegrate job must scrape app:${appPort} (FINTEGRATE_HTTP_PORT of the app service)`);
    }
    if (!(prom.scrape_configs || []).some((j) => j.static_configs.some((c) => c.targets.includes('rabbitmq:15692')))) {
      bad.push('RabbitMQ\'s exporter rabbitmq:15692 is not scraped');
    }
    const promMounts = (mounts.prometheus || []).map((m) => m.target);
    for (const rf of prom.rule_files || []) {
      if (!promMounts.includes(path.posix.join('/etc/prometheus', rf))) bad.push(`rule file ${rf} is not mounted next to prometheus.yml`);
    }
    check(bad.length === 0, 'Prometheus scrapes the app through nginx and RabbitMQ\'s exporter, and its rule file is mounted', bad);
  }

  // --- Grafana ---------------------------------------------------------------------
  const dsFile = tryParse('Grafana datasource provisioning', () => readYaml('docker/grafana/provisioning/datasources/prometheus.yml'));
  const provider = tryParse('Grafana dashboard provisioning', () => readYaml('docker/grafana/provisioning/dashboards/fintegrate.yml'));
  const dash = tryParse('docker/grafana/dashboards/fintegrate.json', () => JSON.parse(fs.readFileSync(rel('docker/grafana/dashboards/fintegrate.json'), 'utf8')));
  if (provider) {
    const dir = provider.providers[0].options.path;
    const m = (mounts.grafana || []).find((x) => x.target === dir);
    check(m && path.resolve(ROOT, m.source) === rel('docker/grafana/dashboards'),
          `the dashboard provider's folder ${dir} is docker/grafana/dashboards mounted`);
  }
  const exprs = [];
  if (dash && dsFile) {
    const uid = dsFile.datasources[0].uid;
    const wrong = [];
    (function walk(panels) {
      for (const p of panels || []) {
        if (p.panels) walk(p.panels);
        for (const t of p.targets || []) {
          exprs.push({ where: `dashboard panel "${p.title}"`, expr: t.expr });
          const d = t.datasource || p.datasource;
          if (!d || d.uid !== uid) wrong.push(p.title);
        }
      }
    })(dash.panels);
    check(exprs.length > 0 && wrong.length === 0, `every dashboard query uses the provisioned datasource (uid ${uid})`, wrong);
    const titles = JSON.stringify(dash.panels.map((p) => p.title)).toLowerCase();
    const wanted = ['request rate', 'error rate', 'latency', 'outbox', 'publish failures', 'queue depth'];
    check(wanted.every((w) => titles.includes(w)), 'the dashboard has request rate, error rate, latency, outbox, publish failures and queue depth panels',
          wanted.filter((w) => !titles.includes(w)).map((w) => `no panel about ${w}`));
  }
  const alerts = tryParse('docker/prometheus/alerts.yml', () => readYaml('docker/prometheus/alerts.yml'));
  if (alerts) {
    for (const g of alerts.groups) {
      for (const r of g.rules) exprs.push({ where: `alert ${r.alert}`, expr: r.expr });
    }
  }

  // --- metric names ------------------------------------------------------------------
  const base = process.env.FINTEGRATE_BASE_URL;
  let exported = null;
  if (base) {
    const res = await fetchText(`${base}/metrics`);
    if (res.status === 200) {
      exported = new Set();
      for (const line of res.body.split('\n')) {
        // Sample names, and family names from the TYPE lines.
        const m = /^(?:# TYPE )?([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
        if (m) exported.add(m[1]);
      }
      check(true, `compared against the live ${base}/metrics (${exported.size} names)`);
    }
  }
  if (!exported) {
    // docs/API.md §5.8, until /metrics answers.
    const families = ['fintegrate_http_requests_total', 'fintegrate_events_published_total',
      'fintegrate_publish_failures_total', 'fintegrate_delivery_confirms_total', 'fintegrate_circuit_breaker_state',
      'fintegrate_outbox_pending', 'fintegrate_outbox_failed', 'fintegrate_events_undelivered',
      'fintegrate_worker_restarts_total'];
    const histograms = ['fintegrate_http_request_duration_seconds', 'fintegrate_delivery_lag_seconds'];
    exported = new Set(families.concat(...histograms.map((h) => [h, `${h}_bucket`, `${h}_sum`, `${h}_count`])));
    console.log(`# ${base || 'FINTEGRATE_BASE_URL'}/metrics did not answer 200: using the names of docs/API.md §5.8`);
  }
  const rabbit = new Set(fs.readFileSync(rel('tests/config/rabbitmq_metrics.txt'), 'utf8')
    .split('\n').filter((l) => l && !l.startsWith('#')));
  const unknown = [];
  let count = 0;
  for (const { where, expr } of exprs) {
    for (const name of metricNames(expr)) {
      count++;
      if (name === 'up') continue;                     // Prometheus' own
      const known = name.startsWith('rabbitmq_') ? rabbit.has(name) : exported.has(name);
      if (!known) unknown.push(`${where}: ${name}`);
    }
  }
  check(count > 0 && unknown.length === 0,
        `every metric the dashboard and the alert rules use is exported (${count} uses in ${exprs.length} queries)`, unknown);

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
