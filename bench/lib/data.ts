/**
 * Bench inputs: Falco JSON streams from fixtures/falco-stream (cached on disk by their parameters,
 * since generating them takes longer than reading them), deviating events injected at a fixed rate,
 * and baselines learned through the agent's real pipeline.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { BaselineSnapshot } from '../../core/baseline.js';
import { falcoStreamLines, type FalcoStreamOptions } from '../../fixtures/falco-stream.js';

/** 2026-11-23T08:00:00Z: the event-time origin of every bench stream. */
export const T0 = Date.parse('2026-11-23T08:00:00Z');
export const MINUTE = 60_000;

/** Stream parameters plus the injection of deviating events. */
export interface StreamSpec extends FalcoStreamOptions {
  /** Insert one deviating variant after every `deviateEvery` lines (0: none). */
  deviateEvery?: number;
}

/** A generated stream on disk. */
export interface StreamFile {
  path: string;
  events: number;
  bytes: number;
  /** Lines inserted as deviations (the pipeline may report more: real behaviour not seen while learning). */
  injected: number;
}

function keyOf(spec: object): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
}

/** Public addresses and binaries that no workload of the fixture ever uses. */
const ODD_EXES = ['/usr/local/bin/xmrig', '/tmp/.cache/kworkerd', '/usr/bin/nc', '/usr/bin/wget', '/usr/bin/python3'];
const ODD_PEERS: readonly [string, number][] = [['203.0.113.50', 4444], ['198.51.100.23', 6667], ['203.0.113.77', 8333]];

/**
 * A deviating variant of one Falco line: the same container, pod, process and time, but an executable
 * or a peer/port its image never had. Returns null for lines it cannot vary (host events).
 */
export function deviatingVariant(line: string, n: number): string | null {
  const rec = JSON.parse(line) as { output_fields: Record<string, unknown>; time: string };
  const f = rec.output_fields;
  if (f['container.id'] === 'host' || typeof f['container.image.repository'] !== 'string' || f['container.image.repository'] === '') return null;
  const type = f['evt.type'];
  f['proc.pid'] = 3_000_000 + (n % 1_000_000);
  if (type === 'execve') {
    const exe = ODD_EXES[n % ODD_EXES.length] as string;
    f['proc.exepath'] = exe;
    if ('proc.exe' in f) f['proc.exe'] = exe;
    f['proc.name'] = exe.slice(exe.lastIndexOf('/') + 1);
    f['proc.cmdline'] = `${f['proc.name'] as string} -q`;
  } else if (type === 'connect') {
    const [ip, port] = ODD_PEERS[n % ODD_PEERS.length] as [string, number];
    const cip = typeof f['fd.cip'] === 'string' ? f['fd.cip'] : '10.244.1.9';
    const cport = typeof f['fd.cport'] === 'number' ? f['fd.cport'] : 40000;
    f['fd.name'] = `${cip}:${cport}->${ip}:${port}`;
    f['fd.sip'] = ip;
    f['fd.sport'] = port;
    f['fd.rip'] = ip;
    f['fd.rport'] = port;
    f['fd.l4proto'] = 'tcp';
    f['fd.sip.name'] = null;
  } else {
    // accept / listen / bind: a port the image never served.
    const port = 31337;
    const name = typeof f['fd.name'] === 'string' ? f['fd.name'] : '';
    const arrow = name.indexOf('->');
    if (arrow !== -1) {
      const server = name.slice(arrow + 2);
      f['fd.name'] = `${name.slice(0, arrow)}->${server.slice(0, server.lastIndexOf(':'))}:${port}`;
    } else if (name !== '') {
      f['fd.name'] = `${name.slice(0, name.lastIndexOf(':'))}:${port}`;
    }
    f['fd.sport'] = port;
    if (typeof f['fd.lport'] === 'number') f['fd.lport'] = port;
  }
  // evt.time is an exact integer of nanoseconds beyond 2^53: keep the original digits.
  const m = /"evt\.time":(\d+)/.exec(line);
  const text = JSON.stringify(rec);
  return m ? text.replace(/"evt\.time":[0-9.e+]+/, `"evt.time":${m[1] as string}`) : text;
}

/** The lines of a stream spec, with deviations injected. */
export function* specLines(spec: StreamSpec): Generator<{ line: string; injected: boolean }> {
  const { deviateEvery = 0, ...opts } = spec;
  let i = 0;
  let n = 0;
  for (const line of falcoStreamLines(opts)) {
    yield { line, injected: false };
    i++;
    if (deviateEvery > 0 && i % deviateEvery === 0) {
      const v = deviatingVariant(line, n);
      if (v !== null) {
        n++;
        yield { line: v, injected: true };
      } else {
        i--; // try the next line
      }
    }
  }
}

/** Generate (or reuse from the cache) the file of a stream spec. */
export function streamFile(cacheDir: string, spec: StreamSpec): StreamFile {
  mkdirSync(cacheDir, { recursive: true });
  const base = join(cacheDir, `stream-${keyOf(spec)}`);
  const path = `${base}.jsonl`;
  const metaPath = `${base}.meta.json`;
  if (existsSync(path) && existsSync(metaPath)) {
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as StreamFile;
    if (statSync(path).size === meta.bytes) return { ...meta, path };
  }
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  let events = 0;
  let bytes = 0;
  let injected = 0;
  let chunk: string[] = [];
  let chunkLen = 0;
  const flush = () => {
    if (chunk.length === 0) return;
    const buf = Buffer.from(chunk.join(''));
    writeSync(fd, buf);
    bytes += buf.length;
    chunk = [];
    chunkLen = 0;
  };
  for (const { line, injected: inj } of specLines(spec)) {
    chunk.push(line, '\n');
    chunkLen += line.length + 1;
    events++;
    if (inj) injected++;
    if (chunkLen > 1 << 20) flush();
  }
  flush();
  closeSync(fd);
  renameSync(tmp, path);
  const meta: StreamFile = { path, events, bytes, injected };
  writeFileSync(metaPath, JSON.stringify(meta));
  return meta;
}

/** Read and write cached JSON artefacts (learned baselines). */
export function cachedJson<T>(cacheDir: string, name: string, key: object, make: () => Promise<T>): Promise<T> {
  mkdirSync(cacheDir, { recursive: true });
  const path = join(cacheDir, `${name}-${keyOf(key)}.json`);
  if (existsSync(path)) return Promise.resolve(JSON.parse(readFileSync(path, 'utf8')) as T);
  return make().then((v) => {
    writeFileSync(`${path}.tmp-${process.pid}`, JSON.stringify(v));
    renameSync(`${path}.tmp-${process.pid}`, path);
    return v;
  });
}

/** Make every snapshot enforcing (its learning window closed), as the engine would at the next event. */
export function enforcing(snapshots: readonly BaselineSnapshot[]): BaselineSnapshot[] {
  return snapshots.map((s) =>
    s.state === 'learning' ? { ...s, state: 'enforcing' as const, enforcingSince: s.learnUntil, version: s.version + 1 } : s,
  );
}
