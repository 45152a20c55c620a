#!/usr/bin/env node
// tests/api/openapi_json.js — docs/openapi.json is generated from
// docs/openapi.yaml (the file people edit).  Both are committed, so that nginx
// can serve /openapi.json on a machine without Node.js.
//
//   node tests/api/openapi_json.js --write   regenerate docs/openapi.json
//   node tests/api/openapi_json.js --check   fail when it is out of date
//
// The JSON is the YAML document (YAML 1.2 core schema) printed with two-space
// indentation and a final newline.
'use strict';

const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

const root = path.resolve(__dirname, '..', '..');
const yamlPath = path.join(root, 'docs', 'openapi.yaml');
const jsonPath = path.join(root, 'docs', 'openapi.json');

function render() {
  const doc = YAML.parse(fs.readFileSync(yamlPath, 'utf8'), {
    schema: 'core',
    uniqueKeys: true,
    maxAliasCount: -1,
  });
  return JSON.stringify(doc, null, 2) + '\n';
}

const mode = process.argv[2];
if (mode === '--write') {
  fs.writeFileSync(jsonPath, render());
  console.log(`wrote ${path.relative(root, jsonPath)}`);
} else if (mode === '--check') {
  const want = render();
  let have = '';
  try {
    have = fs.readFileSync(jsonPath, 'utf8');
  } catch (e) {
    have = '';
  }
  if (have !== want) {
    console.error('docs/openapi.json is out of date with docs/openapi.yaml: ' +
                  'run `node tests/api/openapi_json.js --write` and commit both');
    process.exit(1);
  }
  console.log('docs/openapi.json matches docs/openapi.yaml');
} else {
  console.error('usage: openapi_json.js --write | --check');
  process.exit(2);
}
