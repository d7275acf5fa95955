/**
 * Renders the quality scenario's source-neutral activities (quality-traffic.ts) as the lines the
 * agent's file sources read:
 * - `falco`: Falco's json_output as file_output writes it, for the rules of
 *   daemonset/falco/driftwatch-rules.yaml (fields as in fixtures/falco/demo.jsonl: output_fields
 *   keys sorted, `evt.time` an exact integer of nanoseconds, `time` with nine fraction digits, absent
 *   values null). An applet shows proc.exepath /bin/busybox, proc.exe its link and proc.name the
 *   applet; a script shows its interpreter as proc.exepath and the script as the first argument.
 * - `tetragon`: Tetragon's JSON export (fixtures/tetragon/*.jsonl, the policy of
 *   daemonset/tetragon/driftwatch-tracingpolicy.yaml): process_exec, and process_kprobe for
 *   tcp_connect, inet_csk_accept, inet_csk_listen_start and udp_sendmsg. The binary is the path the
 *   process was started by (a busybox link, a script). Tetragon's policy has no UDP bind hook, so a
 *   UDP listening socket has no Tetragon line.
 * - `ebpf`: the bpftrace output of the agent's own program, read with `ebpf-file:` (quality-ebpf.ts);
 *   images and pods come from a container runtime over the CRI, as on a node.
 */
import { createEbpfRenderer } from './quality-ebpf.js';
import type { Activity, Container, Proc } from './quality-traffic.js';

const SHIM = '/usr/bin/containerd-shim-runc-v2';

/** The file formats the scenario replays. */
export type QualityFormat = 'falco' | 'tetragon' | 'ebpf';
export const QUALITY_FORMATS: readonly QualityFormat[] = ['falco', 'tetragon', 'ebpf'];

/** When the nodes booted (the monotonic clock of their eBPF recordings read 0): a day before the traffic. */
export function bootOf(startMs: number): number {
  return startMs - 86_400_000;
}

/** The agent's `--source` for a file of `format` (`bootMs`: see bootOf). */
export function sourceSpec(format: QualityFormat, path: string, bootMs: number): string {
  if (format === 'ebpf') return `ebpf-file:${path}?boot=${new Date(bootMs).toISOString()}`;
  return `${format === 'falco' ? 'falco-file' : 'tetragon-file'}:${path}`;
}

/**
 * Renders one node's activities in `format`, in time order: a string of one or more lines, or null when
 * that tool prints nothing for the activity. The eBPF renderer keeps state (the kernel's UDP
 * deduplication), so each node's file gets its own.
 */
export function createRenderer(format: QualityFormat, bootMs: number): (a: Activity) => string | null {
  if (format === 'ebpf') return createEbpfRenderer(bootMs);
  return format === 'falco' ? falcoLine : tetragonLine;
}

let isoSecond = NaN;
let isoPrefix = '';
/** RFC 3339 with nine fraction digits (the text of the whole second is reused: lines come in time order). */
function isoNs(ms: number, ns: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20);
  }
  return `${isoPrefix}${String(ms - second * 1000).padStart(3, '0')}${String(ns).padStart(6, '0')}Z`;
}

const RULES: Record<Activity['kind'], [string, string]> = {
  exec: ['Driftwatch process spawned', 'process'],
  connect: ['Driftwatch outbound connection', 'network'],
  accept: ['Driftwatch inbound connection', 'network'],
  listen: ['Driftwatch listening socket', 'network'],
};

const J = JSON.stringify;
/** Per container and per process, the parts of a line that never change (rendering is the bench's own cost). */
const containerParts = new WeakMap<Container, { falco: string; k8s: string; pod: string }>();
const procParts = new WeakMap<Proc, { falco: string; tetragon: string; tetragonNoPod: string }>();

function partsOf(c: Container): { falco: string; k8s: string; pod: string } {
  let p = containerParts.get(c);
  if (!p) {
    p = {
      falco: `"container.id":${J(c.id.slice(0, 12))},"container.image.digest":${J(c.image.digest)},"container.image.repository":${J(c.image.repository)},"container.image.tag":${J(c.image.tag)},"container.name":${J(c.name)},`,
      k8s: `"k8s.ns.name":${J(c.namespace)},"k8s.pod.name":${J(c.pod)},`,
      pod: J({
        namespace: c.namespace,
        name: c.pod,
        uid: c.podUid,
        container: { id: `containerd://${c.id}`, name: c.name, image: { id: `${c.image.repository}@${c.image.digest}`, name: `${c.image.repository}:${c.image.tag}` }, start_time: new Date(c.start).toISOString().replace('.000Z', 'Z'), pid: 1 },
        pod_labels: c.labels,
        workload: c.workload,
        workload_kind: c.workloadKind,
      }),
    };
    containerParts.set(c, p);
  }
  return p;
}

function procOf(a: Activity, p: Proc): { falco: string; tetragon: string; tetragonNoPod: string } {
  let x = procParts.get(p);
  if (!x) {
    const parent = p.parent;
    const argv = [...(p.script !== null ? [p.script] : []), ...p.args];
    const falco =
      `"proc.cmdline":${J(argv.length > 0 ? `${p.comm} ${argv.join(' ')}` : p.comm)},"proc.exepath":${J(p.exePath)},"proc.name":${J(p.comm)},` +
      `"proc.pexepath":${J(parent ? parent.exePath : null)},"proc.pid":${p.pid},"proc.pname":${J(parent ? parent.comm : null)},"proc.ppid":${parent ? parent.pid : null},` +
      `"user.name":${J(p.user)},"user.uid":${p.uid}`;
    const c = a.container;
    const head = `{"exec_id":${J(execId(a.node, p))},"pid":${p.pid},"uid":${p.uid},"cwd":"/","binary":${J(p.script ?? p.exe)},${p.args.length > 0 ? `"arguments":${J(tetragonArguments(p.args))},` : ''}"flags":"execve clone","start_time":${J(isoNs(c.start, 0))},"auid":4294967295`;
    const tail = `${p.parent ? `,"parent_exec_id":${J(execId(a.node, p.parent))}` : ''},"tid":${p.pid}}`;
    x = { falco, tetragon: `${head},"pod":${partsOf(c).pod},"docker":${J(c.id.slice(0, 31))}${tail}`, tetragonNoPod: `${head}${tail}` };
    procParts.set(p, x);
  }
  return x;
}

/** One Falco JSON line, or null when the activity has nothing Falco would print. */
export function falcoLine(a: Activity): string | null {
  const p = a.proc;
  const parts = partsOf(a.container);
  const type = a.kind === 'exec' ? 'execve' : a.kind === 'accept' ? 'accept4' : a.kind === 'listen' && a.net?.protocol === 'udp' ? 'bind' : a.kind;
  // output_fields in key order: container.*, evt.*, fd.*, k8s.*, proc.*, user.*; evt.time is beyond 2^53, so its exact digits are written.
  let fd = '';
  const n = a.net;
  if (n) {
    if (a.kind === 'listen') {
      fd = `"fd.cip":null,"fd.cport":null,"fd.l4proto":"${n.protocol}","fd.lip":null,"fd.lport":null,"fd.name":${J(`${n.localIp}:${n.localPort}`)},"fd.rip":null,"fd.rport":null,"fd.sip":${J(n.localIp)},"fd.sip.name":null,"fd.sport":${n.localPort},`;
    } else {
      const [cip, cport, sip, sport] = a.kind === 'accept' ? [n.remoteIp, n.remotePort, n.localIp, n.localPort] : [n.localIp, n.localPort, n.remoteIp, n.remotePort];
      const name = a.kind === 'connect' ? J(n.remoteName) : 'null';
      fd = `"fd.cip":${J(cip)},"fd.cport":${cport},"fd.l4proto":"${n.protocol}","fd.lip":${J(n.localIp)},"fd.lport":${n.localPort},"fd.name":${J(`${cip}:${cport}->${sip}:${sport}`)},"fd.rip":${J(n.remoteIp)},"fd.rport":${n.remotePort},"fd.sip":${J(sip)},"fd.sip.name":${name},"fd.sport":${sport},`;
    }
  }
  const exe = a.kind === 'exec' ? `"proc.exe":${J(p.exe)},` : '';
  const [rule, tag] = RULES[a.kind];
  const evtTime = `${a.time}${String(a.ns).padStart(6, '0')}`;
  return `{"hostname":${J(a.node)},"output_fields":{${parts.falco}"evt.time":${evtTime},"evt.type":"${type}",${fd}${parts.k8s}${exe}${procOf(a, p).falco}},"priority":"Notice","rule":"${rule}","source":"syscall","tags":["driftwatch","${tag}"],"time":"${isoNs(a.time, a.ns)}"}`;
}

/** Tetragon joins arguments with spaces and wraps one that holds a space in double quotes. */
function tetragonArguments(args: readonly string[]): string {
  return args.map((x) => (x.includes(' ') ? `"${x}"` : x)).join(' ');
}

function execId(node: string, p: Proc): string {
  return Buffer.from(`${node}:${p.pid * 7919}:${p.pid}`).toString('base64');
}

/** Kernel socket addresses as Tetragon prints them (the exact value only names the socket). */
const COOKIE = '184466233852';

function sockArg(a: Activity, n: NonNullable<Activity['net']>): Record<string, unknown> {
  const sock: Record<string, unknown> = { family: 'AF_INET', type: n.protocol === 'udp' ? 'SOCK_DGRAM' : 'SOCK_STREAM', protocol: n.protocol === 'udp' ? 'IPPROTO_UDP' : 'IPPROTO_TCP' };
  if (a.kind === 'listen') return { ...sock, saddr: n.localIp, sport: n.localPort, cookie: `${COOKIE}1${String(a.proc.pid).padStart(7, '0')}`, state: 'TCP_CLOSE' };
  if (n.protocol === 'udp') return { ...sock, saddr: '0.0.0.0', daddr: '0.0.0.0', sport: n.localPort, cookie: `${COOKIE}2${String(a.proc.pid).padStart(7, '0')}`, state: 'TCP_CLOSE' };
  return { ...sock, saddr: n.localIp, daddr: n.remoteIp, sport: n.localPort, dport: n.remotePort, cookie: `${COOKIE}3${String(a.proc.pid).padStart(7, '0')}`, state: a.kind === 'accept' ? 'TCP_ESTABLISHED' : 'TCP_SYN_SENT' };
}

/** One Tetragon JSON export line, or null when Tetragon's policy has no hook for the activity. */
export function tetragonLine(a: Activity): string | null {
  const p = a.proc;
  const process = procOf(a, p).tetragon;
  // The runtime's own processes (shim, runc) are outside the pod.
  const parent = p.parent ? (p.parent.exe !== SHIM && p.parent.exe !== '/usr/bin/runc' ? procOf(a, p.parent).tetragon : procOf(a, p.parent).tetragonNoPod) : null;
  const base = `"process":${process}${parent ? `,"parent":${parent}` : ''}`;
  const tail = `,"node_name":${J(a.node)},"time":"${isoNs(a.time, a.ns)}"}`;
  if (a.kind === 'exec') return `{"process_exec":{${base}}${tail}`;
  const n = a.net;
  if (!n) return null;
  let kprobe: string;
  const post = '"action":"KPROBE_ACTION_POST","policy_name":"driftwatch-network"';
  if (a.kind === 'listen') {
    if (n.protocol === 'udp') return null;
    kprobe = `"function_name":"inet_csk_listen_start","args":[{"sock_arg":${J(sockArg(a, n))}}],${post}`;
  } else if (a.kind === 'accept') {
    kprobe = `"function_name":"inet_csk_accept","args":[{"int_arg":0}],"return":{"sock_arg":${J(sockArg(a, n))}},${post},"return_action":"KPROBE_ACTION_POST"`;
  } else if (n.protocol === 'udp') {
    kprobe = `"function_name":"udp_sendmsg","args":[{"sock_arg":${J(sockArg(a, n))}},{"sockaddr_arg":${J({ family: 'AF_INET', addr: n.remoteIp, port: n.remotePort })}}],${post}`;
  } else {
    kprobe = `"function_name":"tcp_connect","args":[{"sock_arg":${J(sockArg(a, n))}}],${post}`;
  }
  return `{"process_kprobe":{${base},${kprobe}}${tail}`;
}

/** The JSON line of `a` in `format`, or null when that tool would print none. */
export function renderLine(format: 'falco' | 'tetragon', a: Activity): string | null {
  return format === 'falco' ? falcoLine(a) : tetragonLine(a);
}
