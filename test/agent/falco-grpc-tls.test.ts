import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createFalcoGrpcSource } from '../../agent/sources/falco-grpc.js';
import { falcoOutputsService } from '../../proto/third-party.js';
import { at } from '../helpers/falco.js';
import { testSourceContext } from '../helpers/source-context.js';

/** A CA, and a server and a client certificate it signed (openssl, no prompts). */
function makeCerts(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=test-ca');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost\n');
  for (const who of ['server', 'client']) {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who === 'server' ? 'localhost' : 'driftwatch'}`);
    ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.crt`, '-days', '1', '-extfile', 'san.ext');
  }
}

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

// The certificates are made by openssl at test time; without it the test says so and is skipped.
(hasOpenssl ? test : test.skip)('falco-grpc over TCP with mutual TLS (the server verifies the client certificate)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  makeCerts(dir);
  const read = (f: string) => readFileSync(join(dir, f));
  const server = new grpc.Server();
  t.teardown(() => server.forceShutdown());
  let peers = 0;
  server.addService(falcoOutputsService().service, {
    sub(call: grpc.ServerDuplexStream<unknown, unknown>) {
      peers++;
      call.on('data', () => call.write({ time: { seconds: Date.parse(at(0)) / 1000 }, source: 'syscall', output_fields: { 'evt.type': 'execve', 'container.id': 'abc123abc123', 'container.image.repository': 'nginx', 'proc.exepath': '/usr/sbin/nginx', 'proc.name': 'nginx', 'proc.pid': '42' } }));
      call.on('error', () => undefined);
    },
    get(call: grpc.ServerWritableStream<unknown, unknown>) {
      call.end();
    },
  });
  // Like Falco: the server checks the client's certificate against its CA.
  const creds = grpc.ServerCredentials.createSsl(read('ca.crt'), [{ private_key: read('server.key'), cert_chain: read('server.crt') }], true);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  const files = `ca=${join(dir, 'ca.crt')}&cert=${join(dir, 'client.crt')}&key=${join(dir, 'client.key')}`;
  const ac = new AbortController();
  const src = createFalcoGrpcSource(`localhost:${port}?${files}`, testSourceContext(), { pollMs: 1_000, initialBackoffMs: 20 });
  const iter = src.batches(ac.signal)[Symbol.asyncIterator]();
  const first = await iter.next();
  ac.abort();
  await iter.return?.();
  t.false(first.done);
  t.is(first.value?.events[0]?.process.pid, 42);
  t.is(first.value?.events[0]?.container?.image.repository, 'docker.io/library/nginx');
  t.is(peers, 1);
});
