/**
 * The ebpf source's executable origin (drift), for real: an overlayfs mount in a private mount
 * namespace (`unshare -m`, as a container runtime makes one), a binary of its lower layer run (the
 * image), a binary copied into the merged tree after the mount run (written after start: the upper
 * layer), a binary run from a memfd (python3 os.memfd_create + execv of /proc/self/fd/N) and one run
 * from a file deleted before its exec. Plus the decoder on recorded O lines.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEbpfDecoder, originOf, type ProcessResolver } from '../../agent/sources/ebpf/decode.js';
import { findBpftrace, missingPrerequisites, REAL_HOST } from '../../agent/sources/ebpf/prerequisites.js';
import { createEbpfSource } from '../../agent/sources/ebpf/source.js';
import { isDrift, type ActivityEvent } from '../../core/event.js';
import { testSourceContext } from '../helpers/source-context.js';

const hexOf = (s: string | Buffer, pad = 0) => {
  const b = Buffer.concat([Buffer.from(s), Buffer.alloc(Math.max(0, pad - Buffer.byteLength(s)))]);
  return [...b].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('');
};
const printf = (data: string) => JSON.stringify({ type: 'printf', data: `${data}\n` });

test('originOf: links 0 is memfd (by its memfd: name) or deleted; overlay upper/lower; anything else unknown; runc\'s clone is plumbing', (t) => {
  const OVL = 0x794c7630;
  t.is(originOf(OVL, 1, 1, 'dropped'), 'upper-layer');
  t.is(originOf(OVL, 1, 0, 'nginx'), 'image');
  t.is(originOf(OVL, 1, 2, 'nginx'), 'unknown', 'the ovl_inode layout check failed');
  t.is(originOf(0xef53, 1, 2, 'true'), 'unknown', 'ext4: not a container layer');
  t.is(originOf(0x01021994, 0, 2, 'memfd:payload'), 'memfd');
  t.is(originOf(0xef53, 0, 2, 'dropped'), 'deleted');
  t.is(originOf(OVL, 0, 1, 'dropped'), 'deleted', 'a dropped binary deleted before it ran');
  t.is(originOf(0x01021994, 0, 2, 'memfd:runc_clone'), 'unknown');
});

test('decoder: the O record (after the argv) gives the exec its origin; a malformed one is rejected; an exec without it waits, then has none', (t) => {
  const ctx = testSourceContext();
  const resolver: ProcessResolver = { owner: () => ({ kind: 'host' }), exe: () => '' };
  const d = createEbpfDecoder({ ctx, source: 'ebpf', clock: (ns) => ns / 1e6, resolver, now: () => 0 });
  const exec = (ns: number, pid: number, origin: string | null, file: string) => {
    d.line(printf(`X ${ns} ${pid} 1 0 1 0 ${hexOf('sh', 16)}`));
    if (origin !== null) d.line(printf(`O ${ns} ${pid} ${origin}`));
    d.line(printf(`C ${ns} ${pid} ${hexOf('', 128)}`));
    d.line(printf(`F ${ns} ${pid} ${hexOf(file, 200)}`));
  };
  exec(1_000_000, 10, `794c7630 1 1 ${hexOf('dropped', 16)}`, '/tmp/dropped');
  exec(2_000_000, 11, `1021994 0 2 ${hexOf('memfd:x', 16)}`, '/proc/self/fd/3');
  exec(3_000_000, 12, null, '/bin/true');
  d.line(printf(`O 4000000 13 zz 1 1 ${hexOf('x', 16)}`));
  d.line(printf(`O 4000000 13 794c7630 1 7 ${hexOf('x', 16)}`));
  t.deepEqual(d.take().map((e) => [e.process.exe, e.process.origin]), [['/tmp/dropped', 'upper-layer'], ['/proc/self/fd/3', 'memfd']]);
  // Once the program is known to print O records, an exec waits for its own; without it (lost), the
  // assembly window emits it with no origin: no drift is claimed on evidence that did not arrive.
  d.expire(1_000, false);
  t.deepEqual(d.take().map((e) => [e.process.exe, e.process.origin]), [['/bin/true', undefined]]);
  t.deepEqual(ctx.rejects, ['wrong_type', 'wrong_type']);
});

/** Why the real test cannot run here, or null. */
function unavailable(): string | null {
  const missing = missingPrerequisites(findBpftrace('', REAL_HOST) ?? '', REAL_HOST);
  if (missing.length > 0) return missing.join('; ');
  if (process.getuid?.() !== 0) return 'not root (mount -t overlay needs it)';
  for (const tool of ['unshare', 'python3']) if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool]).status !== 0) return `${tool} is not installed`;
  return null;
}

/** Run `argv` and wait for its exit; rejects with its stderr on failure. */
function run(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${argv.join(' ')} exited ${code}: ${err.slice(-500)}`))));
  });
}

test.serial('real bpftrace: a lower-layer binary is the image; one copied into the overlay after the mount is upper-layer; memfd and deleted execs are drift', async (t) => {
  const why = unavailable();
  if (why !== null) {
    t.log(`SKIPPED: ${why}`);
    t.pass();
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'dw-drift-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const d of ['lower', 'upper', 'work', 'merged']) mkdirSync(join(dir, d));
  const tag = `dw${process.pid}`;
  // The image: a binary in the lower layer before the mount.
  copyFileSync('/bin/true', join(dir, 'lower', `${tag}-image`));
  const merged = join(dir, 'merged');
  // What a container's life does, in one private mount namespace: the runtime mounts the overlay, the
  // image's binary runs, then something writes a new binary into the container and runs it. The
  // arguments are positional parameters of sh, never spliced into its script.
  const life = [
    'set -e',
    'mount -t overlay overlay -o "lowerdir=$1/lower,upperdir=$1/upper,workdir=$1/work" "$1/merged"',
    '"$1/merged/$2-image" "$2"',
    'cp /bin/true "$1/merged/$2-dropped"',
    '"$1/merged/$2-dropped" "$2"',
  ].join('\n');
  const memfd = 'import os, sys\nfd = os.memfd_create(sys.argv[1])\nos.write(fd, open("/bin/true", "rb").read())\nos.execv("/proc/self/fd/%d" % fd, [sys.argv[1], sys.argv[1]])';
  const deleted = 'import os, sys\nfd = os.open(sys.argv[2], os.O_RDONLY)\nos.unlink(sys.argv[2])\nos.execv("/proc/self/fd/%d" % fd, [sys.argv[1], sys.argv[1]])';

  const ctx = testSourceContext();
  const source = createEbpfSource('', ctx);
  const controller = new AbortController();
  const events: ActivityEvent[] = [];
  const reading = (async () => {
    for await (const b of source.batches(controller.signal)) events.push(...b.events);
  })();
  t.teardown(() => controller.abort());
  const started = Date.now();
  const marker = `${tag}-ready`;
  while (!events.some((e) => e.kind === 'exec' && e.process.args.includes(marker))) {
    if (Date.now() - started > 90_000) throw new Error(`bpftrace did not report an exec within 90 s; rejects: ${ctx.rejects.join(',')}`);
    spawnSync('/bin/true', [marker]);
    await new Promise((r) => setTimeout(r, 100));
  }

  await run(['unshare', '-m', '--propagation', 'private', 'sh', '-c', life, 'sh', dir, tag]);
  await run(['python3', '-c', memfd, `${tag}-memfd`]);
  copyFileSync('/bin/true', join(dir, `${tag}-deleted`));
  await run(['python3', '-c', deleted, `${tag}-deleted`, join(dir, `${tag}-deleted`)]);
  await run(['/bin/true', `${tag}-host`]);

  const find = () => ({
    image: events.find((e) => e.kind === 'exec' && e.process.exe === join(merged, `${tag}-image`)),
    dropped: events.find((e) => e.kind === 'exec' && e.process.exe === join(merged, `${tag}-dropped`)),
    memfd: events.find((e) => e.kind === 'exec' && e.process.args[0] === `${tag}-memfd`),
    deleted: events.find((e) => e.kind === 'exec' && e.process.args[0] === `${tag}-deleted`),
    host: events.find((e) => e.kind === 'exec' && e.process.args[0] === `${tag}-host`),
  });
  const deadline = Date.now() + 60_000;
  let found = find();
  while (Object.values(found).some((v) => v === undefined) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    found = find();
  }
  controller.abort();
  await reading;
  t.is(found.image?.process.origin, 'image', 'the lower layer is the image');
  t.is(found.dropped?.process.origin, 'upper-layer', 'copied in after the mount: written after start');
  t.is(found.memfd?.process.origin, 'memfd');
  t.like(found.memfd, { process: { exe: '/proc/self/fd/3' } });
  t.is(found.deleted?.process.origin, 'deleted');
  // The agent's own root: this machine's /bin/true is no drift (ext4 here: unknown; in a container, its image).
  t.not(found.host?.process.origin, undefined);
  t.false(isDrift(found.host?.process.origin), `host /bin/true: ${found.host?.process.origin}`);
});
