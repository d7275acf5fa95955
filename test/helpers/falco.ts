/** Builders of Falco JSON records for tests, in the shape Falco's json_output writes them. */

/** Fields of one event; anything not given gets a realistic default for an nginx container. */
export interface FalcoEventSpec {
  time: string;
  type?: string;
  fields?: Record<string, unknown>;
  /** Remove these output fields from the defaults. */
  omit?: string[];
  rule?: string;
}

/** Defaults for a process in an nginx container in namespace shop. */
export const NGINX_DEFAULTS: Readonly<Record<string, unknown>> = Object.freeze({
  'container.id': '3ad7b26ded6d',
  'container.name': 'nginx',
  'container.image.repository': 'docker.io/library/nginx',
  'container.image.tag': '1.25.3',
  'container.image.digest': null,
  'k8s.ns.name': 'shop',
  'k8s.pod.name': 'web-7d9f8c6b5-x2kqz',
  'proc.pid': 4242,
  'proc.exepath': '/usr/sbin/nginx',
  'proc.name': 'nginx',
  'proc.cmdline': 'nginx -g daemon off;',
  'proc.pname': 'containerd-shim',
  'proc.pexepath': '/usr/bin/containerd-shim-runc-v2',
  'user.uid': 0,
  'user.name': 'root',
});

/** One Falco JSON record as an object. */
export function falcoRecord(spec: FalcoEventSpec): Record<string, unknown> {
  const of: Record<string, unknown> = { ...NGINX_DEFAULTS, 'evt.type': spec.type ?? 'execve', ...spec.fields };
  for (const k of spec.omit ?? []) delete of[k];
  return {
    hostname: 'node-1',
    output: `${spec.time.slice(11, 19)}: Notice Driftwatch event (evt.type=${String(of['evt.type'])})`,
    output_fields: of,
    priority: 'Notice',
    rule: spec.rule ?? 'Driftwatch process spawned',
    source: 'syscall',
    tags: ['driftwatch'],
    time: spec.time,
  };
}

/** One Falco JSON line. */
export function falcoLine(spec: FalcoEventSpec): string {
  return JSON.stringify(falcoRecord(spec));
}

/** RFC 3339 with nanoseconds, `minutes` after 08:00 UTC on 2026-11-23. */
export function at(minutes: number): string {
  const ms = Date.UTC(2026, 10, 23, 8, 0, 0) + Math.round(minutes * 60_000);
  return new Date(ms).toISOString().replace('Z', '000000Z').replace(/\.(\d{3})000000Z$/, '.$1123456Z');
}
