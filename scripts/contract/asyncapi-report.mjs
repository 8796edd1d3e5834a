// Resolve an AsyncAPI document with the official parser and print, per message, what a generator
// sees of its payload: the `type` const and the properties of `data` (and of the payload itself).
// Usage: node asyncapi-report.mjs <asyncapi.yaml>   -> JSON on stdout; exit 1 on parse errors.
import { Parser, fromFile } from '@asyncapi/parser';

const path = process.argv[2];
if (!path) {
  console.error('usage: node asyncapi-report.mjs <asyncapi.yaml>');
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, path).parse();
const errors = diagnostics.filter((d) => d.severity === 0);
if (!document || errors.length) {
  console.error(JSON.stringify(errors, null, 2));
  process.exit(1);
}

const names = (schema) => Object.keys(schema?.properties() ?? {}).sort();
const messages = {};
for (const message of document.allMessages()) {
  const payload = message.payload();
  const props = payload?.properties() ?? {};
  messages[message.id()] = {
    name: message.name() ?? null,
    title: payload?.title() ?? null,
    type_const: props.type?.const() ?? null,
    properties: names(payload),
    data_title: props.data?.title() ?? null,
    data_properties: names(props.data),
  };
}
const schemas = {};
for (const schema of document.components().schemas().all()) {
  schemas[schema.id()] = { title: schema.title() ?? null, properties: names(schema) };
}
console.log(JSON.stringify({ messages, schemas }, null, 2));
