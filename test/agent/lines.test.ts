import test from 'ava';
import { createLineSplitter } from '../../agent/sources/lines.js';

function split(chunks: Buffer[], max = 1024): { lines: string[]; rejects: string[] } {
  const lines: string[] = [];
  const rejects: string[] = [];
  const s = createLineSplitter(max, { line: (l) => lines.push(l), reject: (r) => rejects.push(r) });
  for (const c of chunks) s.push(c);
  s.end();
  return { lines, rejects };
}

test('lines across chunk boundaries, CRLF, and a final line without newline', (t) => {
  const r = split([Buffer.from('{"a":1}\r\n{"b"'), Buffer.from(':2}\n\n{"c":3}')]);
  t.deepEqual(r.lines, ['{"a":1}', '{"b":2}', '{"c":3}']);
  t.deepEqual(r.rejects, []);
});

test('a multi-byte character split between chunks is decoded whole', (t) => {
  const bytes = Buffer.from('{"name":"café ☕"}\n');
  const cut = bytes.indexOf(0xe2) + 1; // inside the 3-byte ☕
  const r = split([bytes.subarray(0, cut), bytes.subarray(cut)]);
  t.deepEqual(r.lines, ['{"name":"café ☕"}']);
});

test('a 5 MB line is dropped as too_large without buffering it, the next line survives', (t) => {
  const big = Buffer.alloc(5 * 1024 * 1024, 0x61);
  const chunks: Buffer[] = [Buffer.from('{"before":1}\n')];
  for (let i = 0; i < big.length; i += 65536) chunks.push(big.subarray(i, i + 65536));
  chunks.push(Buffer.from('\n{"after":2}\n'));
  const r = split(chunks, 1 << 20);
  t.deepEqual(r.lines, ['{"before":1}', '{"after":2}']);
  t.deepEqual(r.rejects, ['too_large']);
});

test('an over-long line inside one chunk is dropped too', (t) => {
  const r = split([Buffer.from(`ok\n${'x'.repeat(2000)}\nok2\n`)]);
  t.deepEqual(r.lines, ['ok', 'ok2']);
  t.deepEqual(r.rejects, ['too_large']);
});

test('invalid UTF-8 drops that line only', (t) => {
  const r = split([Buffer.concat([Buffer.from('{"a":1}\n'), Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]), Buffer.from('{"b":2}\n')])]);
  t.deepEqual(r.lines, ['{"a":1}', '{"b":2}']);
  t.deepEqual(r.rejects, ['invalid_utf8']);
});
