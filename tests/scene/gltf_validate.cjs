// Validate one glTF/GLB file with the Khronos glTF validator (npm gltf-validator) and print
// its report's issues as JSON on stdout. Used by tests/scene/test_gltf_validator.py.
// usage: node gltf_validate.cjs FILE [NODE_MODULES_DIR]
"use strict";
const fs = require("fs");
const path = require("path");

const file = process.argv[2];
const modules = process.argv[3] || path.join(__dirname, "..", "..", "node_modules");
const validator = require(path.join(modules, "gltf-validator"));

validator
  .validateBytes(new Uint8Array(fs.readFileSync(file)), { maxIssues: 1000 })
  .then((report) => {
    process.stdout.write(JSON.stringify(report.issues));
  })
  .catch((error) => {
    process.stderr.write(`validation failed: ${error}\n`);
    process.exit(2);
  });
