// Parse an AsyncAPI document with the AsyncAPI initiative's own parser (npm @asyncapi/parser)
// and print its diagnostics as JSON on stdout: [{severity, code, message, path}], severity 0 is
// an error. Used by tests/services/test_schemas.py.
// usage: node asyncapi_parse.cjs FILE [NODE_MODULES_DIR]
"use strict";
const fs = require("fs");
const path = require("path");

const file = process.argv[2];
const modules = process.argv[3] || path.join(__dirname, "..", "..", "node_modules");
const { Parser } = require(path.join(modules, "@asyncapi", "parser"));

new Parser()
  .parse(fs.readFileSync(file, "utf8"))
  .then(({ document, diagnostics }) => {
    const out = diagnostics.map((d) => ({
      severity: d.severity,
      code: d.code,
      message: d.message,
      path: d.path,
    }));
    const summary = document
      ? {
          version: document.version(),
          channels: document.channels().all().map((c) => c.address()),
          operations: document.operations().all().map((o) => o.id()),
          messages: document.allMessages().all().map((m) => m.id()),
        }
      : null;
    process.stdout.write(JSON.stringify({ parsed: Boolean(document), summary, diagnostics: out }));
  })
  .catch((error) => {
    process.stderr.write(`parse failed: ${error}\n`);
    process.exit(2);
  });
