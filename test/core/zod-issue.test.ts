import test from 'ava';
import { z } from 'zod';
import { firstIssue } from '../../core/zod-issue.js';

const Schema = z.strictObject({
  mode: z.enum(['a', 'b']).optional(),
  port: z.number().int().max(65535).optional(),
  nested: z.strictObject({ x: z.number().optional() }).optional(),
  list: z.array(z.strictObject({ name: z.string() })).optional(),
});

const cases: [string, unknown, { path: string; key: string; unknownKeys: string[]; message: RegExp }][] = [
  ['an unknown key at the top', { colour: 1 }, { path: '', key: 'colour', unknownKeys: ['colour'], message: /^unknown setting$/ }],
  ['two unknown keys in a nested object, each with its path', { nested: { y: 1, z: 2 } }, { path: 'nested', key: 'nested.y, nested.z', unknownKeys: ['y', 'z'], message: /^unknown setting$/ }],
  ['an unknown key in a list item', { list: [{ name: 'n' }, { name: 'm', extra: true }] }, { path: 'list.1', key: 'list.1.extra', unknownKeys: ['extra'], message: /^unknown setting$/ }],
  ['a value outside an enum', { mode: 'c' }, { path: 'mode', key: 'mode', unknownKeys: [], message: /^must be one of: a, b$/ }],
  ['any other problem keeps zod\'s words', { port: 70_000 }, { path: 'port', key: 'port', unknownKeys: [], message: /65535/ }],
  ['a hostile key is cut to 64 characters', { ['k'.repeat(10_000)]: 1 }, { path: '', key: 'k'.repeat(64), unknownKeys: ['k'.repeat(64)], message: /^unknown setting$/ }],
];

for (const [what, input, expected] of cases) {
  test(`the first issue, described: ${what}`, (t) => {
    const r = Schema.safeParse(input);
    t.false(r.success);
    const d = firstIssue(r.error!);
    t.is(d.path, expected.path);
    t.is(d.key, expected.key);
    t.deepEqual(d.unknownKeys, expected.unknownKeys);
    t.regex(d.message, expected.message);
    t.is(d.issue, r.error!.issues[0] as typeof d.issue);
  });
}
