/**
 * The agent stream over real TLS on loopback with certificates minted by `driftwatch certs`' code:
 * the collector requires a client certificate from its CA and takes the node from it; plaintext,
 * certificate-less, foreign-CA and wrong-purpose clients are refused; a node cannot speak for
 * another; rotated certificates are used without a restart, on both ends.
 */
import test, { type ExecutionContext } from 'ava';
import { copyFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { certsCollector } from '../../cli/certs.js';
import { type CollectorHandle } from '../../collector/main.js';
import { withCollector } from '../helpers/collector.js';
import { hello } from '../helpers/agent-stream.js';
import { at, falcoLine } from '../helpers/falco.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { eventually, spawnCli } from '../helpers/processes.js';

function tlsCollector(t: ExecutionContext, pki: TestPki, logs: string[] = []): Promise<CollectorHandle> {
  return withCollector(t, { tlsCert: pki.collectorCert, tlsKey: pki.collectorKey, tlsCa: pki.ca, tlsReloadInterval: '100ms' }, { logs });
}

function clientCreds(pki: TestPki, node: string | null): grpc.ChannelCredentials {
  return node === null ? grpc.credentials.createSsl(pki.read(pki.ca)) : grpc.credentials.createSsl(pki.read(pki.ca), pki.read(pki.nodeKey(node)), pki.read(pki.nodeCert(node)));
}

/** The serial number of the certificate the server presents to a new TLS connection. */
function serverSerial(port: number, pki: TestPki): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername: 'localhost', ca: pki.read(pki.ca), cert: pki.read(pki.nodeCert('node-a')), key: pki.read(pki.nodeKey('node-a')), ALPNProtocols: ['h2'] }, () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.destroy();
    });
    s.on('error', reject);
  });
}

async function metric(c: CollectorHandle, pattern: RegExp): Promise<string | undefined> {
  return pattern.exec(await (await fetch(`${c.url}/metrics`)).text())?.[1];
}

test('mTLS: a node certificate speaks for its node only; plaintext, no certificate, another CA or a server certificate are refused', async (t) => {
  const pki = await makePki(t, ['node-a', 'node-b']);
  const other = await makePki(t, ['node-a']);
  const logs: string[] = [];
  const c = await tlsCollector(t, pki, logs);

  t.deepEqual(await hello(c.grpcPort, clientCreds(pki, 'node-a'), 'node-a'), { welcomed: true });

  const impostor = await hello(c.grpcPort, clientCreds(pki, 'node-a'), 'node-b');
  t.like(impostor, { welcomed: false, code: grpc.status.PERMISSION_DENIED });
  t.regex((impostor as { details: string }).details, /authenticated as node node-a; it may not speak for "node-b"/);
  t.true(logs.some((l) => l.includes('"result":"node_mismatch"') && l.includes('"claimed":"node-b"')), 'the collector logs who tried what');

  t.like(await hello(c.grpcPort, grpc.credentials.createInsecure(), 'node-a'), { welcomed: false, code: grpc.status.UNAVAILABLE }, 'plaintext against TLS');
  t.like(await hello(c.grpcPort, clientCreds(pki, null), 'node-a'), { welcomed: false, code: grpc.status.UNAVAILABLE }, 'TLS without a client certificate');
  t.like(await hello(c.grpcPort, grpc.credentials.createSsl(pki.read(pki.ca), other.read(other.nodeKey('node-a')), other.read(other.nodeCert('node-a'))), 'node-a'), { welcomed: false, code: grpc.status.UNAVAILABLE }, 'a certificate from another CA');
  t.like(await hello(c.grpcPort, grpc.credentials.createSsl(pki.read(pki.ca), pki.read(pki.collectorKey), pki.read(pki.collectorCert)), 'localhost'), { welcomed: false }, "the collector's own serverAuth certificate is no node certificate");

  // Refused streams leave nothing open behind them.
  await eventually(async () => ((await metric(c, /^driftwatch_collector_agent_streams (\d+)/m)) === '0' ? true : undefined), 5_000, 'no open streams');
  t.is(await metric(c, /^driftwatch_collector_agent_auth_total\{result="node_mismatch"\} (\d+)/m), '1');
  t.is(await metric(c, /^driftwatch_collector_agent_auth_total\{result="ok"\} (\d+)/m), '1');
  t.is(await c.store.countDeviations(), 0);
});

test("the collector picks up a rotated certificate without a restart, and keeps the old one when the new files don't fit", async (t) => {
  const pki = await makePki(t, ['node-a']);
  const c = await tlsCollector(t, pki);
  const before = await serverSerial(c.grpcPort, pki);

  await certsCollector(pki.dir, { names: ['localhost', '127.0.0.1'], days: 1 });
  const after = await eventually(async () => {
    const s = await serverSerial(c.grpcPort, pki);
    return s !== before ? s : undefined;
  }, 5_000, 'the new certificate to be served');
  t.not(after, before);
  t.deepEqual(await hello(c.grpcPort, clientCreds(pki, 'node-a'), 'node-a'), { welcomed: true }, 'agents connect with the rotated certificate');

  // A key that does not belong to the certificate: refused, the rotated pair stays in use.
  copyFileSync(pki.nodeKey('node-a'), `${pki.collectorKey}.new`);
  renameSync(`${pki.collectorKey}.new`, pki.collectorKey);
  await eventually(async () => ((await metric(c, /^driftwatch_collector_tls_reloads_total\{result="error"\} (\d+)/m)) !== undefined ? true : undefined), 5_000, 'the bad rotation to be noticed');
  t.is(await serverSerial(c.grpcPort, pki), after);
  t.deepEqual(await hello(c.grpcPort, clientCreds(pki, 'node-a'), 'node-a'), { welcomed: true });
});

test('an agent process with the certificate of another node is refused, and connects once its certificate is rotated', async (t) => {
  const pki = await makePki(t, ['node-a', 'node-b']);
  const dir = mkdtempSync(join(tmpdir(), 'dw-tls-e2e-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The agent's certificate files, first holding node-a's certificate while the agent says it is node-b.
  const cert = join(dir, 'agent.crt');
  const key = join(dir, 'agent.key');
  copyFileSync(pki.nodeCert('node-a'), cert);
  copyFileSync(pki.nodeKey('node-a'), key);
  const tokens = join(dir, 'tokens.yaml');
  writeFileSync(tokens, 'tokens:\n  - name: test\n    role: viewer\n    token: e2e-viewer-token-0123456789\n');

  const collector = spawnCli(
    t,
    ['collector', '--db', join(dir, 'c.db'), '--grpc-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--tls-cert', pki.collectorCert, '--tls-key', pki.collectorKey, '--tls-ca', pki.ca, '--api-tokens-file', tokens],
    { secure: true },
  );
  const started = await collector.waitForLog((l) => l.msg === 'collector started');
  t.like(started, { tls: true, agentAuth: 'certificate', apiAuth: true });
  t.false(collector.logs.some((l) => String(l.msg).startsWith('insecure')), 'no insecure warning');
  const url = `http://127.0.0.1:${started.httpPort as number}`;

  const events = join(dir, 'falco.json');
  const lines = [falcoLine({ time: at(0) }), falcoLine({ time: at(90), fields: { 'proc.pid': 4242, 'proc.exepath': '/bin/sh', 'proc.name': 'sh', 'proc.cmdline': 'sh -c id', 'proc.pname': 'nginx' } })];
  writeFileSync(events, `${lines.join('\n')}\n`);
  const agent = spawnCli(
    t,
    ['agent', '--source', `falco-file:${events}`, '--collector', `localhost:${started.grpcPort as number}`, '--node', 'node-b', '--state-dir', join(dir, 'agent'), '--learning-window', '1h', '--http-listen', '127.0.0.1:0', '--tls-ca', pki.ca, '--tls-cert', cert, '--tls-key', key],
    { secure: true },
  );
  await agent.waitForLog((l) => l.msg === 'the collector refused this agent (check its certificate or token and --node)');
  await collector.waitForLog((l) => l.msg === 'refused an agent stream' && l.result === 'node_mismatch' && l.node === 'node-a' && l.claimed === 'node-b');

  // Rotate the agent's files to node-b's certificate (key first, each by rename); no restart.
  copyFileSync(pki.nodeKey('node-b'), `${key}.tmp`);
  renameSync(`${key}.tmp`, key);
  copyFileSync(pki.nodeCert('node-b'), `${cert}.tmp`);
  renameSync(`${cert}.tmp`, cert);
  await agent.waitForLog((l) => l.msg === 'connected to collector', 30_000);
  const alerts = await eventually(async () => {
    const res = await fetch(`${url}/api/v1/alerts`, { headers: { authorization: 'Bearer e2e-viewer-token-0123456789' } });
    const body = (await res.json()) as { items: { nodes: string[] }[] };
    return body.items.length > 0 ? body.items : undefined;
  }, 20_000, 'the deviation to arrive');
  t.deepEqual(alerts[0]!.nodes, ['node-b']);
  t.is((await fetch(`${url}/api/v1/alerts`)).status, 401, 'the API wants a token');
});

test('an agent without TLS settings or --insecure does not start, and says what to give', async (t) => {
  const agent = spawnCli(t, ['agent', '--source', 'stdin', '--collector', '127.0.0.1:1', '--node', 'n1', '--state-dir', '/tmp/dw-never'], { secure: true });
  t.is(await agent.exited, 2);
  t.regex(agent.stderr, /tlsCa: the collector stream needs TLS/);
  const insecure = spawnCli(t, ['agent', '--source', 'stdin', '--collector', '127.0.0.1:1', '--node', 'n1', '--state-dir', join(tmpdir(), `dw-insecure-${process.pid}`), '--insecure', '--http-listen', '127.0.0.1:0'], { secure: true });
  t.teardown(() => rmSync(join(tmpdir(), `dw-insecure-${process.pid}`), { recursive: true, force: true }));
  const warning = await insecure.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('insecure:'));
  t.is(warning.level, 'warn');
  await insecure.stop();
});
