/**
 * Severity: a small, ordered rule table that says how urgent a deviation is and why. The first rule
 * whose every condition holds wins. Pure: the caller supplies what the baseline knows (does it run
 * any shell? which parents start one? did anything run as root?) as plain facts, so this module
 * never reaches into the engine. Each default rule cites the stock Falco rule it answers
 * (falcosecurity/rules, rules/falco*_rules.yaml); the README's severity table walks them all.
 */
import { z } from 'zod';
import type { DeviationReason } from './baseline.js';
import { programName, type Entry, type NetworkDirection, type ProcessEntry } from './entry.js';
import type { EventKind } from './event.js';
import { deepFreeze } from './freeze.js';
import { classifyAddress, parseIp } from './ip.js';
import { stripDeleted, type UserClass } from './normalize.js';
import { firstIssue } from './zod-issue.js';

/** How urgent an alert is, most urgent first. */
export type Severity = 'critical' | 'high' | 'medium' | 'low';

/** All severities, most urgent first (validation, sorting, metric labels). */
export const SEVERITIES: readonly Severity[] = ['critical', 'high', 'medium', 'low'];

/**
 * The class of a network entry's peer. Entries hold `cluster`, `loopback`, `any`, `link-local`, a
 * public address, or a DNS name; a DNS name is only kept for addresses outside the cluster ranges
 * (see core/entry peerOf), so it counts as `public`. `unknown` covers `unknown` and `invalid`.
 */
export type PeerClass = 'cluster' | 'loopback' | 'any' | 'link-local' | 'public' | 'unknown';

/** All peer classes, in a stable order. */
export const PEER_CLASSES: readonly PeerClass[] = ['cluster', 'loopback', 'any', 'link-local', 'public', 'unknown'];

/**
 * The class of a process entry's parent, relative to the program it started:
 * - `shell`: a shell (scripts, entrypoints; also a bare `busybox`/`toybox` whose applet is unknown);
 * - `launcher`: what starts programs for a living: the container runtime (or no known parent, as for
 *   an entrypoint or `kubectl exec`), init wrappers, supervisors, cron, login programs, `timeout`/`xargs`;
 * - `same`: the program re-executing itself or its own kind (`python3` → `python3.11`, `nginx` → `nginx`);
 * - `other`: anything else — a service: a web server, a database, a JVM, an application.
 */
export type ParentClass = 'shell' | 'launcher' | 'same' | 'other';

/** All parent classes, in a stable order. */
export const PARENT_CLASSES: readonly ParentClass[] = ['shell', 'launcher', 'same', 'other'];

/** What the baseline of the deviation's key knows, as facts computed by the caller (baselineFactsOf). */
export interface BaselineFacts {
  /** The baseline has at least one shell or interpreter among its process entries. */
  hasShell: boolean;
  /** The baseline has at least one process entry that ran as root. */
  hasRoot: boolean;
  /**
   * Parent names under which the baseline ran a shell or interpreter (not counting a program that
   * re-executes its own kind). Absent means none are known: a shell under a service then classifies
   * as the remote-code-execution pattern, so callers classifying an exec must supply it.
   */
  shellParents?: ReadonlySet<string> | undefined;
}

/** Facts for a deviation that is not an exec (no process rule reads them). */
export const NO_FACTS: BaselineFacts = Object.freeze({ hasShell: false, hasRoot: false });

/** What classify() looks at: the deviation's entry and reason, the raw executable, and baseline facts. */
export interface SeverityInput {
  kind: EventKind;
  reason: DeviationReason;
  entry: Entry;
  /**
   * The executable as the source reported it, before normalization (entry.exe is normalized); lets
   * rules see ` (deleted)` and `memfd:` names exactly. Defaults to entry.exe.
   */
  exe?: string | undefined;
  baseline: BaselineFacts;
}

/** Conditions of one rule. Every given condition must hold; a list holds when any of its items does. */
export interface SeverityMatch {
  kind?: readonly EventKind[] | undefined;
  /** The deviation reason (`new-executable`, `new-parent`, ...). */
  reason?: readonly DeviationReason[] | undefined;
  /**
   * Program globs (`*`, `?`, `[...]`): with a `/` matched against the executable's whole path, without
   * one against the program name — the applet of a multi-call binary (`/bin/busybox` run as `wget`
   * is `wget`), else the executable's basename.
   */
  exe?: readonly string[] | undefined;
  /** Executable path prefixes, such as `/tmp/`. */
  pathPrefix?: readonly string[] | undefined;
  /** The executable was deleted after it started (` (deleted)` suffix) or lives in memory (`memfd:`). */
  deleted?: boolean | undefined;
  /** Globs against the entry's normalized argument pattern (`-e /bin/sh`, `-c <...>`). */
  args?: readonly string[] | undefined;
  /** The class of the parent (see ParentClass). */
  parent?: readonly ParentClass[] | undefined;
  /** Globs against the parent's name (`postgres`, `mysqld`). */
  parentName?: readonly string[] | undefined;
  /** Holds when "the baseline ran a shell or interpreter under this parent" (BaselineFacts.shellParents) equals this value. */
  parentStartedShell?: boolean | undefined;
  peer?: readonly PeerClass[] | undefined;
  direction?: readonly NetworkDirection[] | undefined;
  user?: readonly UserClass[] | undefined;
  /** Holds when BaselineFacts.hasShell equals this value. */
  baselineHasShell?: boolean | undefined;
  /** Holds when BaselineFacts.hasRoot equals this value. */
  baselineHasRoot?: boolean | undefined;
}

/** One row of the table: an id (stable, for routing and exceptions), a severity and the reason shown in the alert. */
export interface SeverityRule {
  id: string;
  severity: Severity;
  reason: string;
  match: SeverityMatch;
}

/** The verdict for one deviation. */
export interface Classification {
  severity: Severity;
  ruleId: string;
  reason: string;
}

/** What classify() returns when no rule matched (a user table without a catch-all). */
export const UNMATCHED: Classification = Object.freeze({ severity: 'medium', ruleId: 'unmatched', reason: 'no severity rule matched this deviation' });

/** Shells. Program-name globs; `busybox`/`toybox` stand for an applet that is not known (old entries, `busybox` alone). */
export const SHELLS: readonly string[] = Object.freeze(['sh', 'bash', 'dash', 'ash', 'zsh', 'ksh', 'mksh', 'csh', 'tcsh', 'fish', 'busybox', 'toybox']);

/** Shells, and interpreters that give a shell's power (`python -c`, `perl -e`). Program-name globs. */
export const SHELLS_AND_INTERPRETERS: readonly string[] = Object.freeze([
  ...SHELLS,
  'python', 'python2*', 'python3*', 'perl', 'perl5*', 'ruby', 'ruby[0-9]*', 'php', 'php[0-9]*', 'node', 'nodejs', 'lua', 'lua5*', 'tclsh', 'wish', 'pwsh', 'awk', 'gawk', 'mawk',
]);

/**
 * Parents whose children are plumbing, not a service's doing (ParentClass `launcher`). Globs on the
 * parent name (comm, at most 15 characters: `containerd-shim`); '' is an unknown or outside parent.
 * Container runtimes follow Falco's `container_entrypoint` macro.
 */
export const LAUNCHERS: readonly string[] = Object.freeze([
  '', 'runc', 'runc:*', 'crun', 'containerd-shim*', 'conmon', 'crio', 'docker-runc*', 'exe', 'systemd', 'init',
  'tini', 'docker-init', 'dumb-init', 'catatonit', 'runsv', 'runsvdir', 's6-*', 'supervisord', 'gosu', 'su-exec',
  'cron', 'crond', 'anacron', 'sshd', 'login', 'su', 'sudo', 'runuser', 'setpriv',
  'timeout', 'xargs', 'flock', 'nohup', 'env', 'nice', 'watch', 'time', 'setsid', 'stdbuf', 'chroot', 'make',
]);

/** Package managers of distributions and language ecosystems (Falco `package_mgmt_binaries`, `node_package_managers`). */
export const PACKAGE_MANAGERS: readonly string[] = Object.freeze([
  'apt', 'apt-get', 'aptitude', 'dpkg', 'yum', 'dnf', 'microdnf', 'rpm', 'apk', 'zypper', 'pacman',
  'pip', 'pip2', 'pip3', 'pip3.*', 'pipx', 'uv', 'easy_install', 'npm', 'pnpm', 'yarn', 'bun', 'gem', 'composer', 'conda', 'mamba',
]);

/**
 * Tools for moving data over the network or probing it: Falco's `network_tool_binaries`,
 * `remote_file_copy_binaries` and `ingress_remote_file_copy_binaries`, plus curl, ssh and kin.
 */
export const NETWORK_TOOLS: readonly string[] = Object.freeze([
  'curl', 'wget', 'nc', 'nc.*', 'ncat', 'netcat', 'nmap', 'masscan', 'zmap', 'ssh', 'scp', 'sftp', 'sshpass', 'dcp',
  'socat', 'telnet', 'ftp', 'tftp', 'rsync', 'nslookup', 'dig', 'tcpdump', 'tshark', 'ngrep', 'mitmproxy',
]);

/** Known crypto miners (Falco sandbox `miner_binaries`). */
export const MINERS: readonly string[] = Object.freeze([
  'xmrig', 'xmr-stak', 'minerd', 'minergate', 'cpuminer', 'ccminer', 'ethminer', 'cgminer', 'bfgminer', 'sgminer', 'claymore',
  'nbminer', 't-rex', 'gminer', 'lolminer', 'phoenixminer', 'teamredminer', 'nanominer', 'bminer', 'wildrig', 'srbminer',
]);

/** Directories anyone can write to; a binary run from there was most likely dropped at runtime. */
export const WRITABLE_DIRS: readonly string[] = Object.freeze(['/tmp/', '/dev/shm/', '/var/tmp/']);

/**
 * Argument patterns of reverse shells (Falco sandbox "Reverse Shell from Web Server"), written for
 * normalized arguments: `bash -i >& /dev/tcp/<ip>/<n> 0>&1`, `import socket,...;s=...` keeps its key.
 */
const REVERSE_SHELL_ARGS = ['*/dev/tcp/*', '*/dev/udp/*', '*import socket*', '*import pty*', '*pty.spawn*', '*use Socket*', '-rsocket*', '* -rsocket*', '*TCPSocket.*', '*fsockopen(*', '*mkfifo *|*'];

const MULTI_WORD = (flags: readonly string[]) => flags.flatMap((f) => [`${f} *`, `* ${f} *`, `* ${f}`, f]);

/** Network tools that run a program for whoever connects (Falco "Netcat Remote Code Execution in Container"). */
const EXEC_FLAGS = MULTI_WORD(['-e', '-c', '--sh-exec', '--exec', '--lua-exec']).concat(['--sh-exec=*', '* --sh-exec=*', '--exec=*', '* --exec=*', '*EXEC:*', '*exec:*', '*SYSTEM:*', '*system:*']);

/** Arguments that search for keys and credentials (Falco "Search Private Keys or Passwords", "Find AWS Credentials"). */
const SECRET_SEARCH_ARGS = ['*BEGIN*PRIVATE*', '*begin*private*', '*id_rsa*', '*id_dsa*', '*id_ed*', '*id_ecdsa*', '*aws_access_key_id*', '*aws_secret_access_key*', '*aws_session_token*', '*.aws/credentials*', '*AWS_SECRET_ACCESS_KEY*'];

/** Databases (Falco `db_server_binaries`, `nosql_server_binaries`). */
const DATABASES = ['mysqld', 'mariadbd', 'postgres', 'sqlplus', 'mongod', 'redis-server', 'couchdb', 'memcached', 'rabbitmq-server', 'clickhouse*'];

/** Reconnaissance a service has no reason to run (Falco "Basic Interactive Reconnaissance", "Web Server Spawned Suspicious Child Process"). */
const RECON_TOOLS = ['id', 'whoami', 'uname', 'hostname', 'w', 'who', 'base64', 'ifconfig', 'ip', 'netstat', 'ss', 'ps'];

/** Kubernetes and container clients (Falco "Kubernetes Client Tool Launched in Container"). */
const CLUSTER_CLIENTS = ['kubectl', 'crictl', 'docker', 'ctr', 'nerdctl', 'helm'];

const shellArgsIn = (dirs: readonly string[]) => dirs.flatMap((d) => [`${d}*`, `-c ${d}*`, `-i ${d}*`]);

/**
 * The default table. Order matters: the first match wins, so the most specific and most urgent rows
 * come first. The Falco rule each row answers is named in its comment.
 */
export const DEFAULT_SEVERITY_RULES: readonly SeverityRule[] = deepFreeze([
  // Falco "Drop and execute new binary in container" (CRITICAL) and "Fileless execution via memfd_create"
  // (CRITICAL), from the source's own view of the executable (core/event ExecutableOrigin). First: drift
  // is its own reason, alerted in every state; a site changes its severity by a rule with the id `drift`.
  { id: 'drift', severity: 'critical', reason: 'a binary ran that is not from the image: written after the container started, run from memory or from a deleted file', match: { kind: ['exec'], reason: ['drift'] } },
  // Falco sandbox "Reverse Shell from Web Server" (CRITICAL); "Redirect STDOUT/STDIN to Network Connection" seen from the command line.
  { id: 'reverse-shell', severity: 'critical', reason: 'a process ran with a reverse-shell command line (/dev/tcp, a socket in a one-liner, a fifo piped to a shell)', match: { kind: ['exec'], args: REVERSE_SHELL_ARGS } },
  // Falco "Netcat Remote Code Execution in Container" (WARNING), sandbox "Netcat/Socat Remote Code Execution on Host".
  { id: 'netcat-exec', severity: 'critical', reason: 'a network tool ran with an option that hands a program to whoever connects (nc -e, ncat --sh-exec, socat EXEC)', match: { kind: ['exec'], exe: ['nc', 'nc.*', 'ncat', 'netcat', 'socat'], args: EXEC_FLAGS } },
  // Falco sandbox "Known Cryptominer Process Executed" (CRITICAL), "Detect crypto miners using the Stratum protocol" (CRITICAL).
  { id: 'crypto-miner', severity: 'critical', reason: 'a known crypto miner ran', match: { kind: ['exec'], exe: MINERS } },
  { id: 'stratum-miner', severity: 'critical', reason: 'a process ran with a mining pool address (stratum) on its command line', match: { kind: ['exec'], args: ['*stratum+tcp*', '*stratum2+tcp*', '*stratum+ssl*', '*stratum2+ssl*'] } },
  // Falco "Terminal shell in container" (NOTICE), raised: this image never runs a shell at all. Before
  // shell-from-service (both critical) so that a shell in a shell-less image keeps the plainer reason.
  { id: 'shell-where-none', severity: 'critical', reason: 'a shell or interpreter ran in an image whose baseline never runs one', match: { kind: ['exec'], exe: SHELLS_AND_INTERPRETERS, baselineHasShell: false } },
  // Falco "Run shell untrusted" (NOTICE), sandbox "Web Server Spawned Shell" (CRITICAL), incubating "DB program spawned process".
  {
    id: 'shell-from-service',
    severity: 'critical',
    reason: 'a service (web server, database, JVM, app) started a shell or interpreter, which it never did while learned: how remote code execution looks',
    match: { kind: ['exec'], exe: SHELLS_AND_INTERPRETERS, parent: ['other'], parentStartedShell: false },
  },
  // Falco "Fileless execution via memfd_create" (CRITICAL).
  { id: 'deleted-binary', severity: 'critical', reason: 'a binary ran from a deleted or in-memory file', match: { kind: ['exec'], deleted: true } },
  // Falco "Drop and execute new binary in container" (CRITICAL) and "Execution from /dev/shm" (WARNING).
  { id: 'writable-dir-binary', severity: 'critical', reason: 'a binary ran from a world-writable directory: dropped at runtime, not shipped in the image', match: { kind: ['exec'], pathPrefix: WRITABLE_DIRS } },
  { id: 'shell-new-parent', severity: 'high', reason: 'a shell or interpreter ran under a parent that never started it', match: { kind: ['exec'], exe: SHELLS_AND_INTERPRETERS, reason: ['new-parent'] } },
  // Falco "Execution from /dev/shm" (WARNING): a shell running a script from there.
  { id: 'writable-dir-script', severity: 'high', reason: 'a shell or interpreter ran a script from a world-writable directory', match: { kind: ['exec'], exe: SHELLS_AND_INTERPRETERS, args: shellArgsIn(WRITABLE_DIRS) } },
  // Falco incubating "Launch Package Management Process in Container" (ERROR).
  { id: 'package-manager', severity: 'high', reason: 'a package manager ran: software is being installed into a running container', match: { kind: ['exec'], exe: PACKAGE_MANAGERS } },
  // Falco incubating "Launch Suspicious Network Tool in Container", "Launch (Ingress) Remote File Copy Tools in Container" (NOTICE).
  { id: 'network-tool', severity: 'high', reason: 'a network tool ran (download, remote shell or scan)', match: { kind: ['exec'], exe: NETWORK_TOOLS } },
  // Falco sandbox "Kubernetes Client Tool Launched in Container" (WARNING).
  { id: 'cluster-client', severity: 'high', reason: 'a Kubernetes or container client ran inside a container (lateral movement with its credentials)', match: { kind: ['exec'], exe: CLUSTER_CLIENTS } },
  // Falco "Search Private Keys or Passwords" (WARNING), "Find AWS Credentials" (WARNING).
  { id: 'secret-search', severity: 'high', reason: 'a search for private keys or cloud credentials ran', match: { kind: ['exec'], exe: ['grep', 'egrep', 'fgrep', 'find', 'rg'], args: SECRET_SEARCH_ARGS } },
  // Falco incubating "DB program spawned process" (NOTICE): a database starts only its own helpers.
  { id: 'database-child', severity: 'high', reason: 'a database started a program it never started (SQL injection, COPY ... PROGRAM)', match: { kind: ['exec'], reason: ['new-executable', 'new-parent'], parent: ['other'], parentName: DATABASES } },
  // Falco sandbox "Web Server Spawned Suspicious Child Process" (WARNING), "Basic Interactive Reconnaissance" (NOTICE).
  { id: 'service-recon', severity: 'high', reason: 'a service started a reconnaissance command (id, whoami, uname, base64 ...)', match: { kind: ['exec'], reason: ['new-executable', 'new-parent'], exe: RECON_TOOLS, parent: ['other'] } },
  { id: 'new-listen-port', severity: 'high', reason: 'the container listens on a port its baseline never opened', match: { direction: ['listen'] } },
  // Falco incubating "Contact cloud metadata service from container" (NOTICE): 169.254.169.254 is link-local.
  { id: 'link-local-egress', severity: 'high', reason: 'the container reached a link-local address, where the cloud metadata service hands out node credentials', match: { direction: ['egress'], peer: ['link-local'] } },
  { id: 'public-egress', severity: 'high', reason: 'the container connected to a public address its baseline never reached', match: { direction: ['egress'], peer: ['public'] } },
  { id: 'unknown-port-egress', severity: 'high', reason: 'the container connected to a known peer on a port its baseline never used', match: { direction: ['egress'], reason: ['new-port'] } },
  // Falco sandbox "Container Run as Root User" (INFO, disabled), narrowed to images that never run as root.
  { id: 'root-where-none', severity: 'high', reason: 'a process ran as root in an image whose baseline never runs as root', match: { kind: ['exec'], user: ['root'], baselineHasRoot: false } },
  { id: 'new-process', severity: 'medium', reason: 'a process ran that the baseline does not know', match: { kind: ['exec'] } },
  { id: 'new-cluster-peer', severity: 'low', reason: 'the container talked to an in-cluster peer it never talked to', match: { peer: ['cluster'] } },
  { id: 'other-network', severity: 'medium', reason: 'network behaviour the baseline does not know', match: {} },
]);

/** Classify a deviation: the first rule of `rules` whose conditions all hold, or UNMATCHED. */
export function classify(input: SeverityInput, rules: readonly SeverityRule[] = DEFAULT_SEVERITY_RULES): Classification {
  for (const rule of rules) {
    if (matches(rule.match, input)) return { severity: rule.severity, ruleId: rule.id, reason: rule.reason };
  }
  return UNMATCHED;
}

/** Whether a program name is a shell or interpreter. */
export function isShellOrInterpreter(program: string): boolean {
  return anyGlob(SHELLS_AND_INTERPRETERS, program);
}

/** The class of `entry`'s parent relative to the program it started (see ParentClass). */
export function parentClass(entry: ProcessEntry, program: string = programName(entry)): ParentClass {
  const parent = entry.parent;
  if (anyGlob(SHELLS, parent)) return 'shell';
  if (anyGlob(LAUNCHERS, parent)) return 'launcher';
  return sameKind(parent, program) ? 'same' : 'other';
}

/** A program and its parent are one kind when they are equal or one shell/interpreter glob matches both (`python3` and `python3.11`). */
function sameKind(parent: string, program: string): boolean {
  if (parent === program) return true;
  for (const g of SHELLS_AND_INTERPRETERS) if (globMatch(g, parent) && globMatch(g, program)) return true;
  return false;
}

/** The baseline facts of a list of entries (e.g. a merged baseline's), for callers that hold entries. */
export function baselineFactsOf(entries: Iterable<Entry>): BaselineFacts {
  let hasShell = false;
  let hasRoot = false;
  const shellParents = new Set<string>();
  for (const e of entries) {
    if (e.type !== 'process') continue;
    if (e.user === 'root') hasRoot = true;
    const program = programName(e);
    if (!isShellOrInterpreter(program)) continue;
    hasShell = true;
    // A program re-executing its own kind (python multiprocessing, node workers) says nothing about
    // whether its parent runs commands: counting it would hide `python3 → sh` behind `python3 → python3`.
    if (!sameKind(e.parent, program)) shellParents.add(e.parent);
  }
  return { hasShell, hasRoot, shellParents };
}

/** The class of an entry's peer (see PeerClass). */
export function peerClass(peer: string): PeerClass {
  switch (peer) {
    case 'cluster':
    case 'loopback':
    case 'any':
    case 'link-local':
      return peer;
    case '':
    case 'unknown':
    case 'invalid':
      return 'unknown';
  }
  const ip = parseIp(peer);
  // Entries keep only public addresses literally; classify anyway in case a caller passes a raw one.
  if (ip) return classifyAddress(ip);
  return 'public';
}

function matches(m: SeverityMatch, input: SeverityInput): boolean {
  const entry = input.entry;
  if (m.kind && !m.kind.includes(input.kind)) return false;
  if (m.reason && !m.reason.includes(input.reason)) return false;
  if (m.baselineHasShell !== undefined && m.baselineHasShell !== input.baseline.hasShell) return false;
  if (m.baselineHasRoot !== undefined && m.baselineHasRoot !== input.baseline.hasRoot) return false;
  if (m.exe || m.pathPrefix || m.deleted !== undefined || m.user || m.args || m.parent || m.parentName || m.parentStartedShell !== undefined) {
    if (entry.type !== 'process') return false;
    const raw = input.exe !== undefined && input.exe !== '' ? input.exe : entry.exe;
    const exe = stripDeleted(raw);
    // The raw basename, not the normalized one: `/tmp/xmrig` normalizes to `/tmp/<rand>`-like names.
    const program = entry.applet ? entry.applet : exe.slice(exe.lastIndexOf('/') + 1);
    if (m.exe && !m.exe.some((g) => globMatch(g, g.includes('/') ? exe : program))) return false;
    if (m.pathPrefix && !m.pathPrefix.some((p) => exe.startsWith(p) || raw.startsWith(p))) return false;
    if (m.deleted !== undefined && m.deleted !== isDeleted(raw)) return false;
    if (m.user && !m.user.includes(entry.user)) return false;
    if (m.args && !anyGlob(m.args, entry.args)) return false;
    if (m.parentName && !anyGlob(m.parentName, entry.parent)) return false;
    if (m.parent && !m.parent.includes(parentClass(entry, program))) return false;
    if (m.parentStartedShell !== undefined && m.parentStartedShell !== (input.baseline.shellParents?.has(entry.parent) ?? false)) return false;
  }
  if (m.peer || m.direction) {
    if (entry.type !== 'network') return false;
    if (m.direction && !m.direction.includes(entry.direction)) return false;
    if (m.peer && !m.peer.includes(peerClass(entry.peer))) return false;
  }
  return true;
}

/**
 * The kernel shows a running binary whose file was unlinked as `/path (deleted)`; fileless ones as
 * `memfd:name`. runc's own cloned binary (`memfd:runc_cloned:/proc/self/exe`) is excluded, as Falco's
 * `known_memfd_execution_processes` does.
 */
function isDeleted(exe: string): boolean {
  if (exe.startsWith('memfd:runc_cloned:') || exe.startsWith('/memfd:runc_cloned:')) return false;
  return exe !== stripDeleted(exe) || exe.startsWith('memfd:') || exe.startsWith('/memfd:');
}

function anyGlob(globs: readonly string[], text: string): boolean {
  for (const g of globs) if (globMatch(g, text)) return true;
  return false;
}

/**
 * Match `*` (any run), `?` (one character) and `[...]` classes (`[0-9]`, `[!a]`). Iterative with one
 * backtrack point, so it runs in O(pattern × text) at worst on hostile text (no regex is built).
 */
export function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (p < pattern.length) {
      const c = pattern[p] as string;
      if (c === '*') {
        starP = p++;
        starT = t;
        continue;
      }
      if (c === '?') {
        p++;
        t++;
        continue;
      }
      if (c === '[') {
        const cls = matchClass(pattern, p, text[t] as string);
        if (cls !== null) {
          if (cls.matched) {
            p = cls.end;
            t++;
            continue;
          }
        } else if (c === text[t]) {
          p++;
          t++;
          continue;
        }
      } else if (c === text[t]) {
        p++;
        t++;
        continue;
      }
    }
    if (starP === -1) return false;
    p = starP + 1;
    t = ++starT;
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/** A glob that matches exactly `text`: each of `*`, `?` and `[` becomes a one-character class. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[]/g, (c) => `[${c}]`);
}

/** Match one character against the class starting at pattern[at] === '['; null when the class is unterminated (then `[` is literal). */
function matchClass(pattern: string, at: number, ch: string): { matched: boolean; end: number } | null {
  let i = at + 1;
  const negate = pattern[i] === '!' || pattern[i] === '^';
  if (negate) i++;
  let matched = false;
  let first = true;
  while (i < pattern.length && (first || pattern[i] !== ']')) {
    first = false;
    const lo = pattern[i] as string;
    if (pattern[i + 1] === '-' && i + 2 < pattern.length && pattern[i + 2] !== ']') {
      const hi = pattern[i + 2] as string;
      if (ch >= lo && ch <= hi) matched = true;
      i += 3;
    } else {
      if (ch === lo) matched = true;
      i++;
    }
  }
  if (i >= pattern.length) return null;
  return { matched: matched !== negate, end: i + 1 };
}

// ---------------------------------------------------------------------------------------------
// User-supplied tables

/** A severity table that cannot be used; `field` names the offending setting (`rules.2.match.exe.0`). */
export class SeverityConfigError extends Error {
  readonly code = 'invalid_severity_rules' as const;
  constructor(readonly field: string, message: string, options?: { cause?: unknown }) {
    super(field === '' ? message : `${field}: ${message}`, options);
    this.name = 'SeverityConfigError';
  }
}

const DEVIATION_REASONS = ['new-executable', 'new-parent', 'new-user', 'new-arguments', 'new-peer', 'new-port', 'new-listen-port', 'new-protocol', 'drift'] as const satisfies readonly DeviationReason[];
const KINDS = ['exec', 'connect', 'accept', 'listen'] as const satisfies readonly EventKind[];
const DIRECTIONS = ['egress', 'ingress', 'listen'] as const satisfies readonly NetworkDirection[];
const USER_CLASSES = ['root', 'system', 'user', 'unknown'] as const satisfies readonly UserClass[];

/** Lists in a rule are short by nature; the bounds stop a hostile or broken file from growing the table. */
const list = <T extends z.ZodType>(item: T) => z.array(item).min(1).max(256);

/** Schema of one rule's match block; unknown keys are refused. */
export const SeverityMatchSchema = z.strictObject({
  kind: list(z.enum(KINDS)).optional(),
  reason: list(z.enum(DEVIATION_REASONS)).optional(),
  exe: list(z.string().min(1).max(256).regex(/^[^\0\n]+$/, 'must not contain NUL or newlines')).optional(),
  pathPrefix: list(z.string().min(2).max(256).startsWith('/', 'must be an absolute path prefix')).optional(),
  deleted: z.boolean().optional(),
  args: list(z.string().min(1).max(256).regex(/^[^\0\n]+$/, 'must not contain NUL or newlines')).optional(),
  parent: list(z.enum(PARENT_CLASSES as [ParentClass, ...ParentClass[]])).optional(),
  parentName: list(z.string().max(256).regex(/^[^\0\n]*$/, 'must not contain NUL or newlines')).optional(),
  parentStartedShell: z.boolean().optional(),
  peer: list(z.enum(PEER_CLASSES as [PeerClass, ...PeerClass[]])).optional(),
  direction: list(z.enum(DIRECTIONS)).optional(),
  user: list(z.enum(USER_CLASSES)).optional(),
  baselineHasShell: z.boolean().optional(),
  baselineHasRoot: z.boolean().optional(),
});

/** Schema of one rule. */
export const SeverityRuleSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be 1-63 lowercase letters, digits or dashes'),
  severity: z.enum(SEVERITIES as [Severity, ...Severity[]]),
  reason: z.string().trim().min(1).max(200),
  match: SeverityMatchSchema.default({}),
});

/**
 * Schema of a user table: `rules` first, then (unless `defaults: false`) the default table after
 * them, so a site adds its own cases without restating ours.
 */
export const SeverityConfigSchema = z.strictObject({
  rules: z.array(SeverityRuleSchema).max(200).default([]),
  defaults: z.boolean().default(true),
});

/** Validate a user-supplied table (parsed YAML/JSON) and return the rules to classify with, frozen. */
export function parseSeverityRules(input: unknown): readonly SeverityRule[] {
  const result = SeverityConfigSchema.safeParse(input ?? {});
  if (!result.success) {
    const { key, message } = firstIssue(result.error);
    throw new SeverityConfigError(key, message, { cause: result.error });
  }
  const rules: SeverityRule[] = result.data.rules.map((r) => ({ id: r.id, severity: r.severity, reason: r.reason, match: stripUndefined(r.match) }));
  const all = result.data.defaults ? [...rules, ...DEFAULT_SEVERITY_RULES.filter((d) => !rules.some((r) => r.id === d.id))] : rules;
  const seen = new Set<string>();
  for (let i = 0; i < rules.length; i++) {
    const id = (rules[i] as SeverityRule).id;
    if (seen.has(id)) throw new SeverityConfigError(`rules.${i}.id`, `duplicate rule id ${id}`);
    seen.add(id);
  }
  return deepFreeze(all);
}

function stripUndefined(m: z.output<typeof SeverityMatchSchema>): SeverityMatch {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m)) if (v !== undefined) out[k] = v;
  return out as SeverityMatch;
}
