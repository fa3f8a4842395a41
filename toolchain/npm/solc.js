#!/usr/bin/env node
// A `solc` command line for py-solc-x / brownie on top of solc-js (WebAssembly): no native solc
// binary can be installed from the package registries this project may use.
//
// It supports what py-solc-x calls: `--version`, and `--standard-json` with the input on stdin plus
// `--base-path`, `--allow-paths` and `--include-path`, which feed the import callback.
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

function optionValues(args, name) {
  const values = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name && i + 1 < args.length) values.push(...args[i + 1].split(","));
    else if (args[i].startsWith(name + "=")) values.push(...args[i].slice(name.length + 1).split(","));
  }
  return values.filter((value) => value !== "");
}

function importCallback(roots) {
  return (importPath) => {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((root) => path.resolve(root, importPath));
    for (const candidate of candidates) {
      if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
        return { contents: fs.readFileSync(candidate, "utf8") };
      }
    }
    return { error: `File not found: ${importPath} (searched ${roots.join(", ")})` };
  };
}

function main(args) {
  if (args.includes("--version")) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return 0;
  }
  if (!args.includes("--standard-json")) {
    process.stderr.write("solc.js: only --version and --standard-json are supported\n");
    return 2;
  }
  const roots = [
    process.cwd(),
    ...optionValues(args, "--base-path"),
    ...optionValues(args, "--allow-paths"),
    ...optionValues(args, "--include-path"),
  ];
  const input = fs.readFileSync(0, "utf8");
  process.stdout.write(solc.compile(input, { import: importCallback(roots) }));
  return 0;
}

// Never process.exit(): piped stdout would be cut at 64 KiB.
process.exitCode = main(process.argv.slice(2));
