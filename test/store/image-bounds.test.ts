/**
 * admitNewVersions (collector/store/image-view.ts), the pure rule both stores apply to the versions a
 * write did not find stored: the per-write bound, each node's hourly bound, the bound on the table,
 * in that order, counted by bound. The stores' side (what they then keep) is the conformance suite's;
 * the table bound is tested here because filling 200,000 rows per store is no test a busy machine runs.
 */
import test from 'ava';
import { admitNewVersions } from '../../collector/store/image-view.js';
import { MAX_IMAGE_VERSIONS, MAX_NEW_VERSIONS_PER_NODE_HOUR, MAX_NEW_VERSIONS_PER_WRITE } from '../../collector/store/store.js';

const versions = (node: string, n: number) => Array.from({ length: n }, (_, i) => ({ node, tag: `${node}-${i}` }));

const cases: [string, { node: string; tag: string }[], Map<string, number>, number, { admitted: number; bounded: Record<string, number> }][] = [
  ['room for all', versions('a', 10), new Map(), 0, { admitted: 10, bounded: {} }],
  ['past the per-write bound', versions('a', 10_000), new Map(), 0, { admitted: MAX_NEW_VERSIONS_PER_WRITE, bounded: { write_versions: 10_000 - MAX_NEW_VERSIONS_PER_WRITE } }],
  ['a node with 5 left this hour', versions('a', 10), new Map([['a', MAX_NEW_VERSIONS_PER_NODE_HOUR - 5]]), 0, { admitted: 5, bounded: { node_versions: 5 } }],
  ['one node spent, another not', [...versions('a', 3), ...versions('b', 3)], new Map([['a', MAX_NEW_VERSIONS_PER_NODE_HOUR]]), 0, { admitted: 3, bounded: { node_versions: 3 } }],
  ['the table with 2 rows of room', versions('a', 10), new Map(), MAX_IMAGE_VERSIONS - 2, { admitted: 2, bounded: { total_versions: 8 } }],
  ['the table full', versions('a', 1), new Map(), MAX_IMAGE_VERSIONS, { admitted: 0, bounded: { total_versions: 1 } }],
];

for (const [title, candidates, addedThisHour, stored, expected] of cases) {
  test(`admitNewVersions: ${title}`, (t) => {
    const { admitted, bounded } = admitNewVersions(candidates, { addedThisHour, stored });
    t.is(admitted.length, expected.admitted);
    t.deepEqual(bounded, expected.bounded);
    t.deepEqual(admitted, candidates.filter((c) => admitted.includes(c)), 'in their order');
  });
}
