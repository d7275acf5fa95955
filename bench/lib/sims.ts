/** Drives simulated agent processes (children/sim-agent.js) from a scenario. */
import { fileURLToPath } from 'node:url';
import type { SimConfig } from '../children/sim-agent.js';
import { spawnNode, type Child } from './procs.js';

const SIM = fileURLToPath(new URL('../children/sim-agent.js', import.meta.url));

/** What one burst did, summed over processes. */
export interface BurstResult {
  deviations: number;
  batches: number;
  /** Wall ms from the first process's start to the last ack anywhere. */
  ms: number;
  /** Per-batch send→ack latencies, ms. */
  latencies: number[];
}

/** A group of simulated agent processes. */
export interface SimGroup {
  children: Child[];
  readyBytes: number;
  /** Tell the first `perProcess` streams of every process to send their batches; resolves when all are acknowledged. */
  burst(perProcess: number, timeoutMs: number): Promise<BurstResult>;
  /** Close every stream and open them again to another server (same batches); one target for all, or one per process. */
  reconnect(target: string | readonly string[]): Promise<void>;
  stop(): Promise<void>;
}

/** Start one process per config and wait until all are connected and have encoded their batches. */
export async function startSims(configs: SimConfig[], timeoutMs: number): Promise<SimGroup> {
  const children = configs.map((c) => spawnNode(SIM, [JSON.stringify(c)], { ipc: true }));
  let readyBytes = 0;
  const ready = () => Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`sim agent not ready within ${timeoutMs} ms: ${c.stderr.slice(-500)}`)), timeoutMs);
          const onMessage = (m: { type: string; bytes?: number }) => {
            if (m.type !== 'ready') return;
            readyBytes += m.bytes ?? 0;
            clearTimeout(timer);
            c.child.off('message', onMessage);
            resolve();
          };
          c.child.on('message', onMessage);
          void c.exited.then((code) => {
            clearTimeout(timer);
            reject(new Error(`sim agent exited (${code}) before ready: ${c.stderr.slice(-800)}`));
          });
        }),
    ),
  );
  await ready();
  return {
    children,
    async reconnect(target) {
      const r = ready();
      children.forEach((c, i) => c.child.send({ type: 'connect', target: typeof target === 'string' ? target : target[i % target.length] }));
      await r;
    },
    readyBytes,
    async burst(perProcess, burstTimeoutMs) {
      const dones = children.map(
        (c) =>
          new Promise<{ start: number; acked: number; batches: number; lastAck: number; latencies: number[] }>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`burst not acknowledged within ${burstTimeoutMs} ms`)), burstTimeoutMs);
            const onMessage = (m: { type: string; start: number; acked: number; batches: number; lastAck: number; latencies: number[] }) => {
              if (m.type !== 'done') return;
              clearTimeout(timer);
              c.child.off('message', onMessage);
              resolve(m);
            };
            c.child.on('message', onMessage);
          }),
      );
      for (const c of children) c.child.send({ type: 'go', burst: perProcess });
      const rs = await Promise.all(dones);
      const start = Math.min(...rs.map((r) => r.start));
      const end = Math.max(...rs.map((r) => r.lastAck));
      return { deviations: rs.reduce((n, r) => n + r.acked, 0), batches: rs.reduce((n, r) => n + r.batches, 0), ms: end - start, latencies: rs.flatMap((r) => r.latencies) };
    },
    async stop() {
      for (const c of children) if (c.child.connected) c.child.send({ type: 'stop' });
      await Promise.all(children.map((c) => Promise.race([c.exited, new Promise((r) => setTimeout(r, 5_000))])));
      for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    },
  };
}
