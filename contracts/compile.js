#!/usr/bin/env node
// Compiles contracts/src/*.sol with solc-js into contracts/artifacts/<Name>.json.
// `--check` compiles in memory and fails when the committed artifacts are stale.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const root = path.resolve(__dirname, "..");
const srcDir = path.join(__dirname, "src");
const outDir = path.join(__dirname, "artifacts");
const EVM_VERSION = "prague"; // solc 0.8.37 defaults to osaka, which py-evm cannot run

function sourcesSha256(files) {
  // Same digest as contracts.sources_sha256() in Python: name NUL content NUL, sorted by name.
  const hash = crypto.createHash("sha256");
  for (const name of files) {
    hash.update(name + "\0");
    hash.update(fs.readFileSync(path.join(srcDir, name)));
    hash.update("\0");
  }
  return hash.digest("hex");
}

function findImport(importPath) {
  const candidate = path.join(root, "node_modules", importPath);
  if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  return { error: `import not found: ${importPath} (run npm ci)` };
}

function compile() {
  const files = fs.readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort();
  const sources = {};
  for (const name of files) sources[name] = { content: fs.readFileSync(path.join(srcDir, name), "utf8") };
  const input = {
    language: "Solidity",
    sources,
    settings: {
      evmVersion: EVM_VERSION,
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  // Warnings inside OpenZeppelin are theirs to fix; ours and every error are shown.
  const ours = (e) => e.severity === "error" || !(e.sourceLocation || {}).file?.startsWith("@");
  for (const e of (output.errors || []).filter(ours)) process.stderr.write(e.formattedMessage + "\n");
  if (errors.length) throw new Error(`${errors.length} compiler error(s)`);
  const ozVersion = require(path.join(root, "node_modules/@openzeppelin/contracts/package.json")).version;
  const digest = sourcesSha256(files);
  const artifacts = {};
  for (const file of files) {
    for (const [name, contract] of Object.entries(output.contracts[file] || {})) {
      artifacts[name] = {
        _generated: "by contracts/compile.js from contracts/src; do not edit",
        compiler: solc.version(),
        evmVersion: EVM_VERSION,
        openzeppelin: ozVersion,
        sourcesSha256: digest,
        abi: contract.abi,
        bytecode: "0x" + contract.evm.bytecode.object,
      };
    }
  }
  return artifacts;
}

function differences(file, artifact) {
  // Which header/abi/bytecode fields of the committed artifact differ from a fresh compile.
  if (!fs.existsSync(file)) return ["missing"];
  let committed;
  try {
    committed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    return [`unreadable (${err.message})`];
  }
  return Object.keys(artifact).filter(
    (key) => JSON.stringify(committed[key]) !== JSON.stringify(artifact[key]),
  );
}

function main() {
  const check = process.argv.includes("--check");
  const artifacts = compile();
  const stale = [];
  for (const [name, artifact] of Object.entries(artifacts)) {
    const file = path.join(outDir, `${name}.json`);
    if (check) {
      const diff = differences(file, artifact);
      if (diff.length) stale.push(`${name} (${diff.join(", ")})`);
    } else {
      fs.mkdirSync(outDir, { recursive: true });
      fs.writeFileSync(file, JSON.stringify(artifact, null, 1) + "\n");
      console.log(`wrote contracts/artifacts/${name}.json (${(artifact.bytecode.length - 2) / 2} bytes)`);
    }
  }
  if (stale.length) {
    console.error(`stale artifacts: ${stale.join("; ")}: run \`npm run compile\` and commit them`);
    process.exit(1);
  }
  if (check) console.log(`artifacts up to date: ${Object.keys(artifacts).join(", ")}`);
}

try {
  main();
} catch (err) {
  console.error(`compile failed: ${err.message}`);
  process.exit(1);
}
