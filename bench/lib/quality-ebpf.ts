/**
 * Renders the quality scenario's activities (quality-traffic.ts) as the lines bpftrace prints for the
 * agent's own program (agent/sources/ebpf/program.ts, `bpftrace -f json`), which the agent reads back
 * with `--source ebpf-file:FILE?boot=TIME`. Shapes as a real capture on this machine shows them:
 *
 * - exec (sched_process_exec): `X ns pid ppid uid cgid argvlen parent-comm`, `C ns pid cgroup-leaf`,
 *   `F ns pid filename`, then `A ns pid offset bytes` per 200 bytes of argv. The file name is the path
 *   handed to execve (bprm->filename): a busybox applet's link (`/usr/bin/wget`, argv[0] `wget`), a
 *   script's own path, whose argv the kernel rewrote to `interpreter script args…`. Strings are
 *   `\xNN` per byte over the whole buffer (comm 16 bytes, cgroup leaf 128, file name 200), NUL-padded.
 * - TCP connect and listen (inet_sock_set_state): addresses as 4 bytes, the connect's source port 0
 *   (not chosen yet at SYN_SENT); accept: addresses as the socket's u32 in the host's byte order.
 * - UDP sends: `connect udp 0 0 <u32 peer> <port>` (sendto with an address), printed once per cgroup,
 *   peer and port in each minute (the program's maps, cleared every 60 s). A UDP listen has no line:
 *   the program has no bind probe.
 * - DNS: where the traffic says the peer of a connect had a name (Falco's fd.sip.name), the process
 *   received the answer first: `Q ns pid uid cgid length leaf` and `R ns pid 0 bytes` carrying a DNS
 *   response (one question, one A record, TTL 60 s), 1 ms before the connect.
 *
 * Every container's cgroup leaf is containerd's `cri-containerd-<id>.scope`; its cgroup id a number
 * taken from the container id. `ns` is CLOCK_MONOTONIC: event time minus `bootMs`.
 */
import { endianness } from 'node:os';
import type { Activity, Container, Proc } from './quality-traffic.js';

const LE = endianness() === 'LE';

/** `\xNN` for every byte of `b`, padded with NULs to `size` bytes (cut to it when longer). */
function rx(b: Buffer, size: number): string {
  let out = '';
  for (let i = 0; i < size; i++) out += `\\x${(i < b.length ? (b[i] as number) : 0).toString(16).padStart(2, '0')}`;
  return out;
}

/** An IPv4 address as its 4 bytes in network order. */
function v4(ip: string): Buffer {
  return Buffer.from(ip.split('.').map(Number));
}

/** An IPv4 address as the kernel's u32 field read on this host (`%u` of skc_daddr). */
function u32(ip: string): number {
  const b = v4(ip);
  return LE ? b.readUInt32LE(0) : b.readUInt32BE(0);
}

/** A DNS response naming `address` for `name`: header, the question, one A record (name compressed). */
export function dnsResponse(name: string, address: string, id: number, ttlS = 60): Buffer {
  const qname = Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id & 0xffff, 0);
  header.writeUInt16BE(0x8180, 2); // response, recursion desired and available, NOERROR
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(1, 6);
  const question = Buffer.concat([qname, Buffer.from([0, 1, 0, 1])]);
  const answer = Buffer.alloc(16);
  answer.writeUInt16BE(0xc00c, 0);
  answer.writeUInt16BE(1, 2);
  answer.writeUInt16BE(1, 4);
  answer.writeUInt32BE(ttlS, 6);
  answer.writeUInt16BE(4, 10);
  v4(address).copy(answer, 12);
  return Buffer.concat([header, question, answer]);
}

const printf = (data: string) => `{"type": "printf", "data": "${data.replaceAll('\\', '\\\\')}\\n"}`;

/** Renders activities of one node's capture; stateful (the kernel's per-minute UDP deduplication). */
export type EbpfRenderer = (a: Activity) => string | null;

/** A renderer for one capture whose monotonic clock read 0 at `bootMs`. */
export function createEbpfRenderer(bootMs: number): EbpfRenderer {
  const leaves = new WeakMap<Container, { leaf: string; cgid: string }>();
  const comms = new WeakMap<Proc, string>();
  const udpSent = new Map<string, number>();
  let udpMinute = -1;

  const cgroupOf = (c: Container) => {
    let x = leaves.get(c);
    if (!x) {
      x = { leaf: rx(Buffer.from(`cri-containerd-${c.id}.scope`), 128), cgid: String(parseInt(c.id.slice(0, 12), 16)) };
      leaves.set(c, x);
    }
    return x;
  };
  const commOf = (p: Proc) => {
    let x = comms.get(p);
    if (x === undefined) {
      x = rx(Buffer.from(p.comm).subarray(0, 15), 16);
      comms.set(p, x);
    }
    return x;
  };

  return (a) => {
    const ns = `${a.time - bootMs}${String(a.ns).padStart(6, '0')}`;
    const p = a.proc;
    const { leaf, cgid } = cgroupOf(a.container);
    if (a.kind === 'exec') {
      // What the kernel hands the new process: a script's argv is rewritten to `interpreter script args…`.
      const argv = p.script !== null ? [p.exe, p.script, ...p.args] : [p.exePath === '/bin/busybox' ? p.comm : p.exe, ...p.args];
      const bytes = Buffer.from(`${argv.join('\0')}\0`);
      const n = Math.min(bytes.length, 4000);
      const lines = [
        printf(`X ${ns} ${p.pid} ${p.parent?.pid ?? 1} ${p.uid} ${cgid} ${n} ${p.parent ? commOf(p.parent) : rx(Buffer.alloc(0), 16)}`),
        printf(`C ${ns} ${p.pid} ${leaf}`),
        printf(`F ${ns} ${p.pid} ${rx(Buffer.from(p.script ?? p.exe), 200)}`),
      ];
      for (let o = 0; o < n; o += 200) lines.push(printf(`A ${ns} ${p.pid} ${o} ${rx(bytes.subarray(o, Math.min(n, o + 200)), Math.min(200, n - o))}`));
      return lines.join('\n');
    }
    const net = a.net;
    if (!net) return null;
    const head = `N ${ns} ${p.pid} ${p.uid} ${cgid} ${a.kind} ${net.protocol}`;
    const tail = `${commOf(p)} ${leaf}`;
    if (a.kind === 'listen') return net.protocol === 'udp' ? null : printf(`${head} ${rx(v4(net.localIp), 4)} ${net.localPort} ${rx(v4('0.0.0.0'), 4)} 0 ${tail}`);
    if (a.kind === 'accept') return printf(`${head} ${u32(net.localIp)} ${net.localPort} ${u32(net.remoteIp)} ${net.remotePort} ${tail}`);
    if (net.protocol === 'udp') {
      const minute = Math.floor((a.time - bootMs) / 60_000);
      if (minute !== udpMinute) {
        udpSent.clear();
        udpMinute = minute;
      }
      const key = `${cgid} ${net.remoteIp} ${net.remotePort}`;
      if (udpSent.has(key)) return null;
      udpSent.set(key, 1);
      return printf(`${head} 0 0 ${u32(net.remoteIp)} ${net.remotePort} ${tail}`);
    }
    const connect = printf(`${head} ${rx(v4(net.localIp), 4)} 0 ${rx(v4(net.remoteIp), 4)} ${net.remotePort} ${tail}`);
    if (net.remoteName === null) return connect;
    // The answer that named the peer, received by the same process just before.
    const answerNs = `${a.time - 1 - bootMs}${String(a.ns).padStart(6, '0')}`;
    const msg = dnsResponse(net.remoteName, net.remoteIp, a.ns);
    return [printf(`Q ${answerNs} ${p.pid} ${p.uid} ${cgid} ${msg.length} ${leaf}`), printf(`R ${answerNs} ${p.pid} 0 ${rx(msg, msg.length)}`), connect].join('\n');
  };
}
