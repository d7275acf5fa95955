/**
 * Taking one node's share out of a merged entry (core/merge withoutShare), as a table: what is
 * left is what the remaining nodes and security account for, never the removed node's; where
 * security's own share cannot be told from the removed node's, it is left out and said so.
 */
import test from 'ava';
import { exampleKey, withoutShare, type EntryShare, type MergedEntryStats } from '../../core/merge.js';

const share = (firstSeen: number, lastSeen: number, count: number, examples: string[] | null = []): EntryShare => ({ firstSeen, lastSeen, count, examples: examples && examples.map(exampleKey) });

/** The merge of some shares as the store makes it (counts summed, times widened, examples united in order). */
function mergeOf(shares: [EntryShare, string[]][], own: { first: number; last: number; examples?: string[] } | null = null): MergedEntryStats {
  const firsts = shares.map(([s]) => s.firstSeen).concat(own ? [own.first] : []);
  const lasts = shares.map(([s]) => s.lastSeen).concat(own ? [own.last] : []);
  const examples: string[] = [];
  for (const x of [...(own?.examples ?? []), ...shares.flatMap(([, e]) => e)]) if (!examples.includes(x) && examples.length < 5) examples.push(x);
  return { firstSeen: Math.min(...firsts), lastSeen: Math.max(...lasts), count: shares.reduce((n, [s]) => n + s.count, 0), nodes: shares.length, examples };
}

const cases: { name: string; shares: [EntryShare, string[]][]; own?: { first: number; last: number; examples?: string[] }; ownShare?: boolean; unaccounted?: number; expected: MergedEntryStats; narrowed?: string[] }[] = [
  {
    name: 'two nodes: what is left is the other node alone',
    shares: [
      [share(100, 900, 40, ['a1', 'a2']), ['a1', 'a2']],
      [share(300, 500, 7, ['b1']), ['b1']],
    ],
    expected: { firstSeen: 300, lastSeen: 500, count: 7, nodes: 1, examples: ['b1'] },
  },
  {
    name: 'an example both sent stays; three nodes: the other two',
    shares: [
      [share(100, 900, 40, ['same', 'a']), ['same', 'a']],
      [share(300, 500, 7, ['same']), ['same']],
      [share(200, 950, 2, ['c']), ['c']],
    ],
    expected: { firstSeen: 200, lastSeen: 950, count: 9, nodes: 2, examples: ['same', 'c'] },
  },
  {
    name: 'security\'s own times outside every node\'s (added or accepted): kept exactly',
    shares: [
      [share(100, 900, 40, ['a']), ['a']],
      [share(300, 500, 7, ['b']), ['b']],
    ],
    own: { first: 10, last: 2000, examples: ['hand'] },
    ownShare: true,
    expected: { firstSeen: 10, lastSeen: 2000, count: 7, nodes: 1, examples: ['hand', 'b'] },
  },
  {
    name: 'security added it after the node last saw it: its last seen is known, its first only bounded by it (narrowed)',
    shares: [
      [share(100, 900, 40, ['a']), ['a']],
      [share(300, 500, 7, ['b']), ['b']],
    ],
    own: { first: 2000, last: 2000, examples: ['hand'] },
    ownShare: true,
    expected: { firstSeen: 300, lastSeen: 2000, count: 7, nodes: 1, examples: ['hand', 'b'] },
    narrowed: ['times'],
  },
  {
    name: 'security added it by hand before the node saw it: its first seen is known, its last only bounded by it (narrowed)',
    shares: [[share(100, 900, 40, ['a']), ['a']]],
    own: { first: 50, last: 50, examples: ['hand'] },
    ownShare: true,
    expected: { firstSeen: 50, lastSeen: 50, count: 0, nodes: 0, examples: ['hand'] },
    narrowed: ['times'],
  },
  {
    name: 'security accepted it inside the node\'s times: unknown, left out and narrowed',
    shares: [[share(100, 900, 40, ['a']), ['a']]],
    own: { first: 100, last: 400 },
    ownShare: true,
    expected: { firstSeen: 0, lastSeen: 0, count: 0, nodes: 0, examples: [] },
    narrowed: ['times'],
  },
  {
    name: 'a count no node accounts for (kept through a relearn) stays, and so does its first seen before the nodes\' (its last, behind the removed node\'s, is narrowed)',
    shares: [
      [share(100, 900, 40), []],
      [share(300, 500, 7), []],
    ],
    own: { first: 10, last: 20 },
    unaccounted: 5,
    expected: { firstSeen: 10, lastSeen: 500, count: 12, nodes: 1, examples: [] },
    narrowed: ['times'],
  },
  {
    name: 'the removed node\'s examples not recorded (an older store): only the others\' provable ones stay',
    shares: [
      [share(100, 900, 40, null), ['a']],
      [share(300, 500, 7, ['b']), ['b']],
    ],
    own: { first: 300, last: 300, examples: ['hand'] },
    expected: { firstSeen: 300, lastSeen: 500, count: 7, nodes: 1, examples: ['b'] },
    narrowed: ['examples'],
  },
  {
    name: 'the other node\'s examples not recorded: those not the removed node\'s stay',
    shares: [
      [share(100, 900, 40, ['a']), ['a']],
      [share(300, 500, 7, null), ['b']],
    ],
    expected: { firstSeen: 300, lastSeen: 500, count: 7, nodes: 1, examples: ['b'] },
  },
];

for (const c of cases) {
  test(`withoutShare: ${c.name}`, (t) => {
    const merged = mergeOf(c.shares, c.own ?? null);
    merged.count += c.unaccounted ?? 0;
    const [[gone], ...rest] = c.shares as [[EntryShare, string[]], ...[EntryShare, string[]][]];
    const result = withoutShare(merged, gone, rest.map(([s]) => s), c.ownShare ?? false);
    t.deepEqual(result.stats, c.expected);
    t.deepEqual(result.narrowed, c.narrowed ?? []);
  });
}

test('withoutShare: the removed node\'s times never survive, whatever the others', (t) => {
  // Without a share of security's, a merged value outside the nodes' (an older store's leftover) is not kept either.
  const merged: MergedEntryStats = { firstSeen: 1, lastSeen: 10_000, count: 47, nodes: 2, examples: [] };
  const { stats } = withoutShare(merged, share(100, 900, 40), [share(300, 500, 7)], false);
  t.like(stats, { firstSeen: 300, lastSeen: 500, count: 7 });
});
