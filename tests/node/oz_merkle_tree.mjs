// Reference oracle for tests/node/test_merkle.py: builds a tree with the real @openzeppelin/merkle-tree.
// Usage: node oz_merkle_tree.mjs <node_modules dir>  <<< '{"types": [...], "values": [[...], ...]}'
// Prints {"root", "proofs" (one per input value, in input order), "dump"} as JSON.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const nodeModules = process.argv[2];
if (!nodeModules) {
  throw new Error('pass the node_modules directory that holds @openzeppelin/merkle-tree');
}
// ESM ignores NODE_PATH, so resolve through a require() anchored inside that node_modules folder.
const require = createRequire(path.join(path.resolve(nodeModules), 'noop.js'));
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');

const { types, values } = JSON.parse(readFileSync(0, 'utf8'));
const tree = StandardMerkleTree.of(values, types);
const proofs = values.map((_, i) => tree.getProof(i));
process.stdout.write(JSON.stringify({ root: tree.root, proofs, dump: tree.dump() }));
