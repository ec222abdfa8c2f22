#!/usr/bin/env node
// Compile the dev-chain contracts in contracts/ with the pinned npm `solc` and write
// payments/contracts/<Name>.json ({contractName, abi, bytecode}) for payments/devchain.py.
//
// Usage: npm run compile-contracts
//
// The output is deterministic: source unit names are repo-relative and solc's metadata hash only
// covers those names and the sources, so re-running on unchanged inputs rewrites identical files.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const solc = require("solc");

const ROOT = path.resolve(__dirname, "..");
const NODE_MODULES = path.join(ROOT, "node_modules");
const OUT_DIR = path.join(ROOT, "payments", "contracts");
const CONTRACTS = ["TestUSDC", "BatchSender", "OddTransfer", "Test18", "SmartWallet", "GreedyWallet"];
// Pin the target EVM so bytecode does not change with solc's default; anvil 1.7 runs newer forks
// too, and cancun keeps the artifacts usable on older dev nodes.
const EVM_VERSION = "cancun";

function fail(message) {
  console.error(`compile_contracts: ${message}`);
  process.exit(1);
}

// Resolve library imports from node_modules only, so nothing outside the pinned packages is read.
function findImports(importPath) {
  if (!importPath.startsWith("@openzeppelin/")) {
    return { error: `unsupported import (only @openzeppelin/* is resolved): ${importPath}` };
  }
  const file = path.resolve(NODE_MODULES, importPath);
  if (!file.startsWith(NODE_MODULES + path.sep)) {
    return { error: `import escapes node_modules: ${importPath}` };
  }
  try {
    return { contents: fs.readFileSync(file, "utf8") };
  } catch (err) {
    return { error: `cannot read ${importPath} (did you run npm install?): ${err.message}` };
  }
}

function buildInput() {
  const sources = {};
  for (const name of CONTRACTS) {
    const unit = `contracts/${name}.sol`;
    sources[unit] = { content: fs.readFileSync(path.join(ROOT, unit), "utf8") };
  }
  return {
    language: "Solidity",
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: EVM_VERSION,
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
    },
  };
}

function main() {
  const input = buildInput();
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));

  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) {
    console.error(e.formattedMessage || e.message);
  }
  if (errors.length > 0) {
    fail(`${errors.length} compile error(s) with solc ${solc.version()}`);
  }

  fs.mkdirSync(OUT_DIR, { recursive: true });
  for (const name of CONTRACTS) {
    const compiled = output.contracts?.[`contracts/${name}.sol`]?.[name];
    const bytecode = compiled?.evm?.bytecode?.object;
    if (!compiled || !bytecode) {
      fail(`no bytecode for ${name} (abstract contract or wrong file name?)`);
    }
    const artifact = { contractName: name, abi: compiled.abi, bytecode: `0x${bytecode}` };
    const outFile = path.join(OUT_DIR, `${name}.json`);
    fs.writeFileSync(outFile, `${JSON.stringify(artifact, null, 2)}\n`);
    console.log(`wrote ${path.relative(ROOT, outFile)}`);
  }
}

main();
