import test from 'ava';
import { isMultiCall, normalizeArg, normalizeArgs, normalizePath, stripDeleted, userClass, MAX_PATTERN_ARGS } from '../../core/normalize.js';

// [input, expected pattern]
const args: [string, string][] = [
  ['-g', '-g'],
  ['daemon', 'daemon'],
  ['30', '<num>'],
  ['-1.5', '<num>'],
  ['--port=8080', '--port=<num>'],
  ['--workers', '--workers'],
  ['--request-id=7f3e9c2a', '--request-id=<hex>'],
  ['deadbeefcafebabe', '<hex>'],
  ['0x7ffe1234', '<hex>'],
  ['3f2b8c1e-4d5a-4b6c-9d7e-1f2a3b4c5d6e', '<uuid>'],
  ['--id=3f2b8c1e-4d5a-4b6c-9d7e-1f2a3b4c5d6e', '--id=<uuid>'],
  ['http://10.96.12.7:8080/healthz', 'http://<ip>:<n>/healthz'],
  ['10.244.1.9', '<num>'.replace('<num>', '<ip>')],
  ['eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9', '<rand>'],
  ['/tmp/backup-3f9a2c.sql', '/tmp/backup-<rand>.sql'],
  ['/tmp/tmp.Xb3k9QwLz2', '/tmp/tmp.<rand>'],
  ['/proc/4242/status', '/proc/<n>/status'],
  ['/proc/7/fd', '/proc/<n>/fd'],
  ['/usr/lib/postgresql/16/bin/postgres', '/usr/lib/postgresql/16/bin/postgres'],
  ['/var/log/app-20261123.log', '/var/log/app-<n>.log'],
  ['-U', '-U'],
  ['postgres', 'postgres'],
  ['id;uname', 'id;uname'],
  ['python3.11', 'python3.11'],
];
for (const [input, expected] of args) {
  test(`arg ${JSON.stringify(input)} → ${expected}`, (t) => {
    t.is(normalizeArg(input), expected);
  });
}

test('fresh volatile values give the same pattern', (t) => {
  const a = normalizeArgs(['-f', '/tmp/backup-3f9a2c.sql', '--pid', '12345', '--id=9c1d2e3f4a5b']);
  const b = normalizeArgs(['-f', '/tmp/backup-a81b77.sql', '--pid', '987', '--id=0a1b2c3d4e5f']);
  t.is(a, b);
});

test('different commands keep different patterns', (t) => {
  t.not(normalizeArgs(['-c', 'id;uname -a']), normalizeArgs(['-c', 'curl -fsS http://127.0.0.1:8080/healthz']));
  t.not(normalizeArg('--mode=read'), normalizeArg('--mode=write'));
});

test('patterns are bounded in arguments and length', (t) => {
  const many = Array.from({ length: 100 }, (_, i) => `arg${i}`);
  const p = normalizeArgs(many);
  t.true(p.endsWith(`…(+${100 - MAX_PATTERN_ARGS})`));
  const long = normalizeArgs(['x'.repeat(10_000)]);
  t.true(long.length < 600);
});

test('paths outside temp dirs keep their names', (t) => {
  t.is(normalizePath('/usr/sbin/nginx'), '/usr/sbin/nginx');
  t.is(normalizePath('/tmp/.cache/kworkerd'), '/tmp/.cache/kworkerd');
  t.is(normalizePath('/dev/shm/x9Ab3kLmNq/run'), '/dev/shm/<rand>/run');
});

test('user classes', (t) => {
  t.is(userClass(0), 'root');
  t.is(userClass(101), 'system');
  t.is(userClass(1000), 'user');
  t.is(userClass(-1), 'unknown');
});

test('multi-call binaries are recognised by basename, and a deleted path loses its suffix', (t) => {
  for (const b of ['busybox', 'busybox.static', 'busybox-extras', 'toybox', 'coreutils']) t.true(isMultiCall(b), b);
  for (const b of ['busy', 'sh', 'wget', 'xbusybox', '']) t.false(isMultiCall(b), b);
  t.is(stripDeleted('/bin/busybox (deleted)'), '/bin/busybox');
  t.is(stripDeleted('/bin/busybox'), '/bin/busybox');
});
