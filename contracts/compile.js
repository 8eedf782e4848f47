#!/usr/bin/env node
// Compiles contracts/src/*.sol with solc-js into one artifact set per EVM version:
// contracts/artifacts/<evm>/<Name>.json. One source serves every set; each set names the
// OpenZeppelin release it was built against (London needs one without mcopy).
// `--check` compiles in memory and fails when a committed set is stale; `--json` with it
// also prints {"<evm>": ["<stale contract (fields)>", ...]} for the tests.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const root = path.resolve(__dirname, "..");
const srcDir = path.join(__dirname, "src");
const outDir = path.join(__dirname, "artifacts");
const OZ_IMPORT = "@openzeppelin/contracts/";
// EVM version -> the npm package its OpenZeppelin imports come from. OpenZeppelin >= 5.5
// reaches Bytes.sol (mcopy, Cancun) through EIP712 -> Strings, so London builds against the
// newest 5.x release that compiles for it, installed under an npm alias.
// solc 0.8.37 defaults to osaka, which py-evm cannot run: every set names its version.
const SETS = {
  london: "@openzeppelin/contracts-london",
  cancun: "@openzeppelin/contracts",
  prague: "@openzeppelin/contracts",
};

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

function importer(ozPackage) {
  // Resolves imports from node_modules, sending OpenZeppelin's to the set's package.
  return (importPath) => {
    const mapped = importPath.startsWith(OZ_IMPORT)
      ? ozPackage + "/" + importPath.slice(OZ_IMPORT.length)
      : importPath;
    const candidate = path.join(root, "node_modules", mapped);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
    return { error: `import not found: ${mapped} (run npm ci)` };
  };
}

function compileSet(evmVersion, files, digest) {
  const ozPackage = SETS[evmVersion];
  const sources = {};
  for (const name of files) sources[name] = { content: fs.readFileSync(path.join(srcDir, name), "utf8") };
  const input = {
    language: "Solidity",
    sources,
    settings: {
      evmVersion,
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: importer(ozPackage) }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  // Warnings inside OpenZeppelin are theirs to fix; ours and every error are shown.
  const ours = (e) => e.severity === "error" || !(e.sourceLocation || {}).file?.startsWith("@");
  for (const e of (output.errors || []).filter(ours)) process.stderr.write(e.formattedMessage + "\n");
  if (errors.length) throw new Error(`${evmVersion}: ${errors.length} compiler error(s)`);
  const ozVersion = require(path.join(root, "node_modules", ozPackage, "package.json")).version;
  const artifacts = {};
  for (const file of files) {
    for (const [name, contract] of Object.entries(output.contracts[file] || {})) {
      artifacts[name] = {
        _generated: "by contracts/compile.js from contracts/src; do not edit",
        compiler: solc.version(),
        evmVersion,
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
  const files = fs.readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort();
  const digest = sourcesSha256(files);
  const stale = {};
  for (const evmVersion of Object.keys(SETS)) {
    const setDir = path.join(outDir, evmVersion);
    stale[evmVersion] = [];
    for (const [name, artifact] of Object.entries(compileSet(evmVersion, files, digest))) {
      const file = path.join(setDir, `${name}.json`);
      if (check) {
        const diff = differences(file, artifact);
        if (diff.length) stale[evmVersion].push(`${name} (${diff.join(", ")})`);
      } else {
        fs.mkdirSync(setDir, { recursive: true });
        fs.writeFileSync(file, JSON.stringify(artifact, null, 1) + "\n");
        const bytes = (artifact.bytecode.length - 2) / 2;
        console.log(`wrote contracts/artifacts/${evmVersion}/${name}.json (${bytes} bytes)`);
      }
    }
  }
  if (check && process.argv.includes("--json")) console.log(JSON.stringify(stale));
  const found = Object.entries(stale).filter(([, names]) => names.length);
  if (found.length) {
    const listed = found.map(([evm, names]) => `${evm}: ${names.join("; ")}`).join(" | ");
    console.error(`stale artifacts: ${listed}: run \`npm run compile\` and commit them`);
    process.exit(1);
  }
  if (check) console.log(`artifacts up to date: ${Object.keys(SETS).join(", ")}`);
}

try {
  main();
} catch (err) {
  console.error(`compile failed: ${err.message}`);
  process.exit(1);
}
