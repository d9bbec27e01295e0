// Validates an AsyncAPI document with the AsyncAPI Initiative's own parser and prints every
// diagnostic as one JSON line. Usage: node asyncapi-check.mjs NODE_MODULES_DIR DOCUMENT.
// Exit 0 when the parser produced a document, 1 when it did not.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(path.resolve(process.argv[2]), 'noop.js'));
const { Parser, fromFile } = require('@asyncapi/parser');
const { document, diagnostics } = await fromFile(new Parser(), process.argv[3]).parse();
for (const d of diagnostics) {
  console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
}
process.exit(document ? 0 : 1);
