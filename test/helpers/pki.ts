/** A throwaway CA with a collector certificate and node certificates, made by `driftwatch certs`' code. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { certsInit, certsNode } from '../../cli/certs.js';

/** Paths of a test PKI. */
export interface TestPki {
  dir: string;
  ca: string;
  collectorCert: string;
  collectorKey: string;
  /** node-NAME.crt / .key */
  nodeCert(name: string): string;
  nodeKey(name: string): string;
  read(path: string): Buffer;
}

/** Mint a CA (collector certificate for localhost/127.0.0.1) and certificates for `nodes`; removed after the test. */
export async function makePki(t: ExecutionContext, nodes: string[]): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), 'dw-pki-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await certsInit(dir, { names: ['localhost', '127.0.0.1'], days: 1, caDays: 1 });
  if (nodes.length > 0) await certsNode(dir, nodes, { days: 1 });
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    collectorCert: join(dir, 'collector.crt'),
    collectorKey: join(dir, 'collector.key'),
    nodeCert: (n) => join(dir, `node-${n}.crt`),
    nodeKey: (n) => join(dir, `node-${n}.key`),
    read: (p) => readFileSync(p),
  };
}
