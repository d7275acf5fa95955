/**
 * Drift end to end, as ops would run it: a collector process and an agent process over loopback
 * gRPC, the agent following a Falco file. While the image's baseline is still learning, Falco's stock
 * rule "Drop and execute new binary in container" reports a binary written after the container
 * started: the collector raises a critical drift alert at once (learning does not swallow it), says
 * where the binary came from, and the baseline does not learn it.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, getJson, spawnCli, spawnCollector } from '../helpers/processes.js';
import { at, falcoLine } from '../helpers/falco.js';

test('a binary written after start alerts critical while the baseline is still learning, and is not learned', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-drift-e2e-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const events = join(dir, 'falco.json');
  writeFileSync(events, [
    // The image's nginx, from Driftwatch's rules file, which prints the origin fields.
    falcoLine({ time: at(0), fields: { 'proc.is_exe_upper_layer': false, 'proc.is_exe_lower_layer': true, 'proc.is_exe_from_memfd': false } }),
    // Falco's stock rule: its output fields (falcosecurity/rules @ c72713ee: rules/falco_rules.yaml:1201), no origin field.
    falcoLine({
      time: at(5),
      rule: 'Drop and execute new binary in container',
      fields: { 'proc.exe': '/tmp/kworkerd', 'proc.exepath': '/tmp/kworkerd', 'proc.name': 'kworkerd', 'proc.cmdline': 'kworkerd -o pool', 'proc.pname': 'sh', 'proc.pexepath': '/bin/sh', 'proc.cwd': '/tmp/' },
    }),
    falcoLine({ time: at(6), fields: { 'proc.exepath': '/usr/sbin/nginx', 'proc.cmdline': 'nginx -s reload', 'proc.pname': 'nginx', 'evt.arg.flags': 'EXE_WRITABLE|EXE_LOWER_LAYER' } }),
  ].join('\n') + '\n');

  const collector = await spawnCollector(t, join(dir, 'collector.db'));
  const agent = spawnCli(t, [
    'agent', '--source', `falco-file:${events}`, '--collector', `127.0.0.1:${collector.grpcPort}`,
    '--node', 'node-1', '--state-dir', join(dir, 'agent'), '--learning-window', '1h', '--http-listen', '127.0.0.1:0',
  ]);
  await agent.waitForLog((l) => l.msg === 'agent started');

  const alert = await eventually(async () => {
    const page = await getJson<{ items: { id: string; reason: string; severity: string; rule: { id: string }; explanation: string; summary: string; lastDeviationId: string }[] }>(`${collector.url}/api/v1/alerts`);
    return page.items.find((a) => a.reason === 'drift');
  }, 30_000, 'a drift alert');
  t.is(alert.severity, 'critical');
  t.is(alert.rule.id, 'drift');
  t.regex(alert.summary, /^\/tmp\/<rand>|^\/tmp\/kworkerd/);
  t.regex(alert.explanation, /binary not from the image \(written after start\)/);
  const detail = await getJson<{ drift: boolean; deviations: { process: { origin?: string }; reason: string }[] }>(`${collector.url}/api/v1/alerts/${alert.id}`);
  t.true(detail.drift);
  t.is(detail.deviations[0]?.process.origin, 'upper-layer');

  // The baseline is still learning and learned the image's binaries only, each marked as from the image.
  const baseline = await eventually(async () => {
    const b = await getJson<{ state: string; entries: { summary: string; origin?: string | null }[] }>(`${collector.url}/api/v1/baselines/${encodeURIComponent('docker.io/library/nginx')}`);
    return b.entries.length >= 2 ? b : undefined;
  }, 15_000, 'the learned entries');
  t.is(baseline.state, 'learning');
  t.false(baseline.entries.some((e) => e.summary.includes('kworkerd')), 'drift is not learned');
  t.true(baseline.entries.every((e) => e.origin === 'image'), JSON.stringify(baseline.entries));
  const pages = await getJson<{ items: { reason: string }[] }>(`${collector.url}/api/v1/alerts`);
  t.deepEqual(pages.items.map((a) => a.reason), ['drift'], 'nothing else alerts while learning');

  t.is(await agent.stop(), 0);
  t.is(await collector.stop(), 0);
});
