// Generate TypeScript types for every AMQP body of the contract from schemas/ (never edit the output).
// Usage: node gen-ts.mjs <schemas dir> <output .d.ts>   (`-` as output: stdout)
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compile } from 'json-schema-to-typescript';

const [schemasArg, output] = process.argv.slice(2);
if (!schemasArg || !output) {
  console.error('usage: node gen-ts.mjs <schemas dir> <output .d.ts | ->');
  process.exit(2);
}
const schemas = resolve(schemasArg);
const load = (file) => JSON.parse(readFileSync(join(schemas, file), 'utf8'));

// Bodies allow unknown fields so v1 can grow; consumers ignore them. The types list the known fields
// only (no `[k: string]: unknown`), so a misspelt field name is a compile error, not an `unknown`.
// Free-form maps (an object schema without `properties`, e.g. `metadata`) keep their index signature.
const knownFieldsOnly = (node) => {
  if (Array.isArray(node)) return node.map(knownFieldsOnly);
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'additionalProperties' && value === true && 'properties' in node) continue;
    out[key] = knownFieldsOnly(value);
  }
  const types = [].concat(node.type ?? []);
  if (types.includes('object') && !('properties' in node) && !('additionalProperties' in node)) {
    out.additionalProperties = true;
  }
  return out;
};
const readSchema = {
  order: 1,
  canRead: true,
  read: ({ url }) =>
    JSON.stringify(knownFieldsOnly(JSON.parse(readFileSync(url.startsWith('file:') ? new URL(url) : url, 'utf8')))),
};

// One root that references every body schema and every named result, so shared types (AudioCodec,
// ReplyError, ...) are declared once and every titled schema becomes an exported type.
const bodies = readdirSync(schemas)
  .filter((f) => f.endsWith('.schema.json') && f !== 'defs.schema.json' && f !== 'results.schema.json')
  .sort();
const properties = {};
for (const file of bodies) properties[load(file).title] = { $ref: file };
for (const [name, def] of Object.entries(load('defs.schema.json').$defs)) {
  if (def.title) properties[def.title] = { $ref: `defs.schema.json#/$defs/${name}` }; // AMQP headers too
}
for (const name of Object.keys(load('results.schema.json').$defs).sort()) {
  properties[name] = { $ref: `results.schema.json#/$defs/${name}` };
}
const root = {
  title: 'RtvbpContract',
  description: 'Every message body of the rtvbp-bridge AMQP contract v1, by type name.',
  type: 'object',
  properties,
  additionalProperties: false,
};
const banner = [
  '/* eslint-disable */',
  '// Generated from schemas/ by scripts/contract/gen-ts.mjs: do not edit; run `make contract-types`.',
  '// msgpack `bin` values (audio) are Uint8Array; decode with @msgpack/msgpack.',
].join('\n');
const ts = await compile(root, 'RtvbpContract', {
  cwd: schemas,
  bannerComment: banner,
  additionalProperties: false,
  unreachableDefinitions: true,
  $refOptions: { resolve: { file: readSchema } },
  strictIndexSignatures: false,
  format: true,
});
if (output === '-') process.stdout.write(ts);
else writeFileSync(output, ts);
