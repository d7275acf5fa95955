/**
 * Filling a collector database with many stored deviations quickly. Building millions of rows
 * through the store's ingest would take far longer than the bench's budget, so rows shaped exactly
 * as the store writes them (collector/store/sqlite/ingest.ts ingestTx: a `deviations` row per deviation,
 * its body JSON.stringify of the validated deviation; one `alerts` row per fingerprint with its
 * count, first/last seen, nodes, pods, last deviation and example) are inserted with bare
 * better-sqlite3 into the schema the store itself created. For the load only: synchronous=OFF, no
 * journal, the three secondary indexes of `deviations` dropped and then re-created by the store's
 * own DDL (openSqliteStore), one transaction per 100k rows. One alert in four is of the image of
 * pool[0] (see hotImage).
 */
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { deviationFingerprint, type Deviation } from '../../core/deviation.js';
import { exampleOf } from '../../core/entry.js';
import type { ActivityEvent } from '../../core/event.js';
import { openSqliteStore } from '../../collector/store/sqlite/index.js';
import { makeDeviation } from './deviations.js';

/** The image a quarter of the loaded alerts belong to. */
export function hotImage(pool: readonly ActivityEvent[]): string {
  return pool[0]?.container?.image.repository ?? '';
}

/** Deviations per alert (fingerprint) in the loaded data. */
export const DEVIATIONS_PER_ALERT = 100;
export const NODES = 8;

const ID_TOKEN = 'feedfacefeedfacefeedfacefeedface';
const TIME_TOKEN = 4_102_444_800_123;
const PID_TOKEN = 987_654_321;

interface Template {
  d: Deviation;
  fp: string;
  /** body = parts[0] + v0 + parts[1] + v1 ..., with `slots` naming each value. */
  parts: string[];
  slots: ('id' | 'time' | 'pid')[];
  baseTime: number;
  last: { id: string; time: number; pid: number; count: number; first: number };
}

function template(base: ActivityEvent, t: number): Template {
  const node = `node-${(t % NODES) + 1}`;
  const d = makeDeviation(base, node, 100_000 + t, 0);
  const baseTime = d.event.time;
  const tokenized: Deviation = { ...d, id: ID_TOKEN, event: { ...d.event, time: TIME_TOKEN, process: { ...d.event.process, pid: PID_TOKEN } } };
  const json = JSON.stringify(tokenized);
  const tokens: [string, 'id' | 'time' | 'pid'][] = [[ID_TOKEN, 'id'], [String(TIME_TOKEN), 'time'], [String(PID_TOKEN), 'pid']];
  const found: { at: number; len: number; slot: 'id' | 'time' | 'pid' }[] = [];
  for (const [tok, slot] of tokens) {
    for (let i = json.indexOf(tok); i !== -1; i = json.indexOf(tok, i + tok.length)) found.push({ at: i, len: tok.length, slot });
  }
  found.sort((a, b) => a.at - b.at);
  const parts: string[] = [];
  let from = 0;
  for (const f of found) {
    parts.push(json.slice(from, f.at));
    from = f.at + f.len;
  }
  parts.push(json.slice(from));
  return { d, fp: deviationFingerprint(d), parts, slots: found.map((f) => f.slot), baseTime, last: { id: '', time: 0, pid: 0, count: 0, first: Infinity } };
}

/**
 * Add deviations number `from` (inclusive) to `to` (exclusive) to the database at `path`, grouped
 * into (to - from) / DEVIATIONS_PER_ALERT new alerts, interleaved in time. Returns seconds taken.
 */
export function bulkLoad(path: string, pool: readonly ActivityEvent[], from: number, to: number, alertOffset: number): { seconds: number; alerts: number } {
  if (!pool[0]?.container) throw new Error('the pool must start with a container event');
  const t0 = performance.now();
  openSqliteStore(path).close();
  const db = new Database(path);
  db.exec('DROP INDEX IF EXISTS deviations_fingerprint; DROP INDEX IF EXISTS deviations_key; DROP INDEX IF EXISTS deviations_node;');
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -1000000');
  const insertDeviation = db.prepare('INSERT INTO deviations (id, fingerprint, baseline_key, kind, time, received_at, node, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const insertAlert = db.prepare(`
    INSERT INTO alerts (fingerprint, baseline_key, image, kind, entry, reason, explanation, nearest, first_seen, last_seen, count, nodes, pods, last_deviation_id, example, created_at)
    VALUES (@fingerprint, @baselineKey, @image, @kind, @entry, @reason, @explanation, @nearest, @firstSeen, @lastSeen, @count, @nodes, @pods, @lastDeviationId, @example, @createdAt)`);
  const alerts = Math.max(1, Math.floor((to - from) / DEVIATIONS_PER_ALERT));
  const templates: Template[] = [];
  // One alert in four is of the same (hot) image, so that a list filtered by it fills a page at every size.
  for (let t = 0; t < alerts; t++) templates.push(template(pool[t % 4 === 0 ? 0 : (alertOffset + t) % pool.length] as ActivityEvent, alertOffset + t));
  const receivedAt = Date.now();
  const CHUNK = 100_000;
  const ids = randomBytes(16 * CHUNK);
  for (let start = from; start < to; start += CHUNK) {
    const end = Math.min(to, start + CHUNK);
    randomBytes(16 * CHUNK).copy(ids);
    db.transaction(() => {
      for (let k = start; k < end; k++) {
        const tpl = templates[(k - from) % alerts] as Template;
        const off = (k - start) * 16;
        const id = ids.toString('hex', off, off + 16);
        const time = tpl.baseTime + k;
        const pid = 100_000 + (k % 4_000_000);
        let body = tpl.parts[0] as string;
        for (let i = 0; i < tpl.slots.length; i++) {
          const slot = tpl.slots[i];
          body += (slot === 'id' ? id : slot === 'time' ? String(time) : String(pid)) + (tpl.parts[i + 1] as string);
        }
        insertDeviation.run(id, tpl.fp, tpl.d.key, tpl.d.event.kind, time, receivedAt, tpl.d.event.node, body);
        const l = tpl.last;
        l.count++;
        if (time < l.first) l.first = time;
        if (time >= l.time) Object.assign(l, { id, time, pid });
      }
    })();
  }
  db.transaction(() => {
    for (const tpl of templates) {
      const d = tpl.d;
      const ev = { ...d.event, time: tpl.last.time, process: { ...d.event.process, pid: tpl.last.pid } };
      const pod = ev.pod ? `${ev.pod.namespace}/${ev.pod.name}` : '';
      insertAlert.run({
        fingerprint: tpl.fp,
        baselineKey: d.key,
        image: d.event.container?.image.repository ?? d.key,
        kind: ev.kind,
        entry: JSON.stringify(d.entry),
        reason: d.reason,
        explanation: d.explanation,
        nearest: JSON.stringify(d.nearest),
        firstSeen: tpl.last.first,
        lastSeen: tpl.last.time,
        count: tpl.last.count,
        nodes: JSON.stringify([ev.node]),
        pods: JSON.stringify(pod === '' ? [] : [pod]),
        lastDeviationId: tpl.last.id,
        example: exampleOf(ev),
        createdAt: receivedAt,
      });
    }
  })();
  db.pragma('journal_mode = WAL');
  db.close();
  // The store's own DDL re-creates the secondary indexes.
  openSqliteStore(path).close();
  return { seconds: (performance.now() - t0) / 1000, alerts };
}
