#!/usr/bin/env node
// Compiles contracts/*.sol with solcjs (standard JSON) and writes {abi, bytecode} artifacts for the Python
// package to chains/evm/artifacts/<Name>.json. Run from anywhere: `node tests/chains/compile.js`.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const here = __dirname;
const contractsDir = path.join(here, 'contracts');
const nodeModules = path.join(here, 'node_modules');
const outDir = path.resolve(here, '..', '..', 'chains', 'evm', 'artifacts');
const CONTRACTS = [
  'TestUSDC', 'MockERC1271Wallet', 'PlainERC20', 'WalletFactory', 'Erc6492Validator',
  'Permit2', 'X402ExactPermit2Proxy', 'X402UptoPermit2Proxy', 'PermitERC20',
];

// Every .sol file is a source (so contracts can import local bases); artifacts are written for CONTRACTS only.
const sources = {};
for (const file of fs.readdirSync(contractsDir).filter((f) => f.endsWith('.sol')).sort()) {
  sources[file] = { content: fs.readFileSync(path.join(contractsDir, file), 'utf8') };
}

const input = {
  language: 'Solidity',
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};

function findImports(importPath) {
  // Resolve package imports (e.g. "@openzeppelin/contracts/...") from this directory's node_modules only.
  const resolved = path.resolve(nodeModules, importPath);
  if (!resolved.startsWith(nodeModules + path.sep)) {
    return { error: `import outside node_modules: ${importPath}` };
  }
  try {
    return { contents: fs.readFileSync(resolved, 'utf8') };
  } catch (err) {
    return { error: `not found: ${importPath}` };
  }
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = output.errors || [];
for (const e of errors) {
  console.error(e.formattedMessage);
}
if (errors.some((e) => e.severity === 'error')) {
  process.exit(1);
}

fs.mkdirSync(outDir, { recursive: true });
for (const name of CONTRACTS) {
  const contract = output.contracts[`${name}.sol`][name];
  const artifact = { abi: contract.abi, bytecode: '0x' + contract.evm.bytecode.object };
  const file = path.join(outDir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify(artifact, null, 1) + '\n');
  console.log(`wrote ${path.relative(process.cwd(), file)} (${contract.evm.bytecode.object.length / 2} bytes)`);
}
console.log(`solc ${solc.version()}`);
