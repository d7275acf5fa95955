/**
 * The collector's HTTP API as the console uses it: same origin, the token from sessionStorage as a
 * bearer token, JSON in and out, errors as ApiError with the API's code and message. Types say
 * what the console reads; every field is still treated as possibly missing or odd (dom.show).
 */

/** Roles, weakest first (as collector/http/auth.ts); shown, never used to decide. */
export const ROLES = ['viewer', 'responder', 'reviewer', 'admin'] as const;
/** One of ROLES. */
export type Role = (typeof ROLES)[number];

/** A route as the server's table names it: `POST /api/v1/alerts/{id}/acknowledge`. */
export type RouteName = `${'GET' | 'POST' | 'DELETE'} /api/v1/${string}`;

/** Who the caller is and what it may call, from `GET /api/v1/whoami`. */
export interface Me {
  name: string;
  role: Role;
  /** The routes of the server's table this token may call. */
  routes: ReadonlySet<string>;
}

/**
 * The route (or routes, all needed) behind each thing the console offers. Who may call a route is
 * the server's table's to say (whoami lists them); this only keeps buttons away from those who
 * would get a 403.
 */
export const ACTION_ROUTES = {
  acknowledge: 'POST /api/v1/alerts/{id}/acknowledge',
  resolve: 'POST /api/v1/alerts/{id}/resolve',
  accept: 'POST /api/v1/alerts/{id}/accept',
  createException: 'POST /api/v1/exceptions',
  revokeException: 'DELETE /api/v1/exceptions/{id}',
  audit: 'GET /api/v1/audit',
  changeBaseline: [
    'POST /api/v1/baselines/{key}/lock',
    'POST /api/v1/baselines/{key}/unlock',
    'POST /api/v1/baselines/{key}/relearn',
    'POST /api/v1/baselines/{key}/entries/{id}/approve',
    'POST /api/v1/baselines/{key}/entries/{id}/remove',
  ],
  quarantine: ['POST /api/v1/nodes/{node}/quarantine', 'DELETE /api/v1/nodes/{node}/quarantine'],
} as const satisfies Record<string, RouteName | readonly RouteName[]>;

/** May `me` do `action`? */
export function can(me: Me, action: keyof typeof ACTION_ROUTES): boolean {
  const need: RouteName | readonly RouteName[] = ACTION_ROUTES[action];
  return (typeof need === 'string' ? [need] : need).every((r) => me.routes.has(r));
}

/** An alert as `GET /api/v1/alerts` shows it. */
export interface Alert {
  id: string;
  state: string;
  image: string;
  baselineKey: string;
  kind: string;
  summary: string;
  reason: string;
  explanation: string;
  /** The binary did not come from the image (deviation reason drift); absent from older collectors. */
  drift?: boolean;
  process: { exe: string; args: string; parent: string; user: string } | null;
  network: { direction: string; protocol: string; peer: string; port: number } | null;
  example: string;
  nearest: unknown[];
  firstSeen: string | null;
  lastSeen: string | null;
  count: number;
  nodes: string[];
  pods: string[];
  namespace: string;
  severity: string;
  rule: { id: string; reason: string } | null;
  team: string;
  suppressedBy: string | null;
  stateChange: { by: string; at: string | null; comment: string } | null;
}

/** The package behind an executable, from its image's SBOM (issue 22). */
export interface SbomLink {
  status: 'package' | 'listed' | 'not-listed' | 'unknown';
  package: { name: string; version: string; purl: string; type: string } | null;
  text: string;
  /** The SBOM lists the image's files, not this one: drift evidence. */
  notInSbom: boolean;
}

/** The SBOM used for a view, and why (`repository`: the digest was not known, the latest was used). */
export interface SbomChoice {
  digest: string;
  tool: string;
  basis: 'digest' | 'repository';
  note: string;
}

/** `GET /api/v1/baselines/{key}/sbom`: a baseline joined with its image's SBOMs. */
export interface BaselineSbom {
  sbom: SbomChoice | null;
  entries: (SbomLink & { id: string; exe: string })[];
  notice: { from: string; to: string; text: string; addsOrDrops: boolean; changes: { exe: string; change: string; before: SbomLink['package']; after: SbomLink['package'] }[] } | null;
}

/** An alert as `GET /api/v1/alerts/{id}` shows it. */
export interface AlertDetail extends Alert {
  deviations: Record<string, unknown>[];
  deliveries: Record<string, unknown>[];
  /** Its executable's package (absent from collectors before issue 22; null without an SBOM). */
  sbom?: (SbomLink & SbomChoice) | null;
}

/** Review states of a baseline (`relearn`: until the agents report their new window). */
export const BASELINE_STATES = ['learning', 'enforcing', 'locked', 'relearn'] as const;

/** A baseline as `GET /api/v1/baselines` lists it. */
export interface BaselineSummary {
  key: string;
  state: string;
  /** Review version: 0 until someone changes it. */
  version: number;
  partial: boolean;
  namespaces: string[];
  windowStart: string | null;
  learnUntil: string | null;
  enforcingSince: string | null;
  events: number;
  overflow: boolean;
  images: { repository: string; tag: string; digest: string }[];
  nodes: string[];
  processEntries: number;
  networkEntries: number;
  openAlerts: number;
}

/** One entry of a baseline, with its review status. */
export interface BaselineEntry {
  id: string;
  type: string;
  summary: string;
  exe?: string;
  parent?: string;
  user?: string;
  args?: string;
  direction?: string;
  protocol?: string;
  peer?: string;
  port?: number;
  /** learned, flagged, approved, added or removed. */
  status: string;
  /** The reviewer's reason, or `new in version X ...` / `generalized (...)` for a flagged entry. */
  statusReason?: string;
  /** For a block or class learned from many addresses: its evidence (see core/baseline generalizationOf); else null. */
  generalization?: { kind: 'block' | 'class'; prefixLength: number; addresses: number; prefixes: { length: number; count: number }[] } | null;
  firstSeen: string | null;
  lastSeen: string | null;
  count: number;
  /** The nodes that taught it. */
  nodes: string[];
  /** Nodes whose share of it was dropped (quarantined, or by a reviewer); absent from older collectors. */
  droppedNodes?: string[];
  examples: string[];
  /** Where a process entry's executable came from (`image`, `upper-layer`, `memfd`, `deleted`, `unknown`) and its text; null when no source told. */
  origin?: string | null;
  originText?: string | null;
}

/** A quarantined node (`GET /api/v1/nodes/quarantined`). */
export interface QuarantinedNode {
  node: string;
  by: string;
  at: string | null;
  reason: string;
}

/** The quarantined nodes by name; empty from a collector that does not have them (404). */
export async function quarantinedNodes(api: Api): Promise<Map<string, QuarantinedNode>> {
  try {
    const list = await api.get<{ items?: unknown }>('nodes/quarantined');
    const items = Array.isArray(list.items) ? list.items : [];
    return new Map(items.filter((q): q is QuarantinedNode => typeof q === 'object' && q !== null && typeof (q as { node?: unknown }).node === 'string').map((q) => [q.node, q]));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return new Map();
    throw err;
  }
}

/** A baseline as `GET /api/v1/baselines/{key}` (and every review change) returns it. */
export type Baseline = Omit<BaselineSummary, 'processEntries' | 'networkEntries' | 'openAlerts'> & { entries: BaselineEntry[] };

/** One version of a baseline (`GET /api/v1/baselines/{key}/versions`), newest first. */
export interface BaselineVersion {
  version: number;
  at: string | null;
  by: string;
  action: string;
  reason: string;
  state: string;
  /** Active entries after it. */
  entries: number;
  removed: number;
}

/** `GET /api/v1/baselines/{key}/diff`. */
export interface BaselineDiff {
  from: number | null;
  to: number | null;
  added: { id: string; summary: string }[];
  removed: { id: string; summary: string }[];
}

/** A page of a list. */
export interface Page<T> {
  items: T[];
  next?: string | null;
}

/** An error answer of the API (or of the network: status 0). */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

const TOKEN_KEY = 'driftwatch.token';

/** The token of this tab's session (sessionStorage: gone when the tab closes). */
export function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** Keep (or with null, forget) the token. */
export function storeToken(token: string | null): void {
  try {
    if (token === null) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Storage disabled: the session lasts until reload.
  }
}

/** Query parameters; empty and undefined values are left out. */
export type Query = Record<string, string | number | null | undefined>;

function url(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  const qs = params.toString();
  return `/api/v1/${path}${qs === '' ? '' : `?${qs}`}`;
}

/** The API with one token. */
export class Api {
  constructor(private readonly token: string) {}

  private async send(method: string, path: string, query: Query, body: unknown, accept: string): Promise<Response> {
    const headers: Record<string, string> = { accept };
    if (this.token !== '') headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      return await fetch(url(path, query), { method, headers, body: body === undefined ? null : JSON.stringify(body), credentials: 'omit', cache: 'no-store', redirect: 'error' });
    } catch (err) {
      throw new ApiError(0, 'network', `the collector cannot be reached (${(err as Error).message})`);
    }
  }

  private async call<T>(method: string, path: string, query: Query = {}, body?: unknown): Promise<T> {
    const res = await this.send(method, path, query, body, 'application/json');
    let parsed: unknown = null;
    try {
      parsed = await res.json();
    } catch {
      parsed = null;
    }
    if (!res.ok) throw errorOf(res, parsed);
    return parsed as T;
  }

  /** GET a JSON document. */
  get<T>(path: string, query: Query = {}): Promise<T> {
    return this.call<T>('GET', path, query);
  }

  /** POST a JSON body. */
  post<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('POST', path, {}, body);
  }

  /** DELETE. */
  del<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path);
  }

  /**
   * GET a file to save (an export): its bytes and the name the server suggests. Fetched with the
   * token, so it cannot be a plain link; see `saveFile` in dom.ts.
   */
  async file(path: string, query: Query = {}): Promise<{ blob: Blob; name: string }> {
    const res = await this.send('GET', path, query, undefined, '*/*');
    if (!res.ok) {
      let parsed: unknown = null;
      try {
        parsed = await res.json();
      } catch {
        parsed = null;
      }
      throw errorOf(res, parsed);
    }
    return { blob: await res.blob(), name: fileName(res.headers.get('content-disposition')) };
  }

  /** Who this token is and what it may call. */
  async whoami(): Promise<Me> {
    const me = await this.get<{ name?: unknown; role?: unknown; routes?: unknown }>('whoami');
    const role = (ROLES as readonly unknown[]).includes(me.role) ? (me.role as Role) : 'viewer';
    const routes = Array.isArray(me.routes) ? me.routes.slice(0, 1000).filter((r): r is string => typeof r === 'string' && r.length <= 256) : [];
    return { name: typeof me.name === 'string' ? me.name : '?', role, routes: new Set(routes) };
  }

  /** The token, for the live feed's subprotocol. */
  get bearer(): string {
    return this.token;
  }
}

function errorOf(res: Response, parsed: unknown): ApiError {
  const e = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return new ApiError(res.status, typeof e?.code === 'string' ? e.code : 'http_error', typeof e?.message === 'string' ? e.message : `HTTP ${res.status}`);
}

/** The file name of a `content-disposition: attachment; filename="x.yaml"`, made safe; `download.yaml` without one. */
export function fileName(disposition: string | null): string {
  const m = /filename="([^"]{1,200})"/.exec(disposition ?? '');
  const name = (m?.[1] ?? '').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '');
  return name === '' ? 'download.yaml' : name;
}

/** A path segment, percent-encoded (baseline keys contain slashes). */
export function seg(s: string): string {
  return encodeURIComponent(s);
}

/** A short message for an error, saying what to do where it helps. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 401) return 'Your token is not valid (any more). Sign in again.';
    if (err.status === 403) return `Not allowed: ${err.message}`;
    if (err.status === 429) return 'Too many requests; wait a moment and try again.';
    return err.message;
  }
  return err instanceof Error ? err.message : String(err);
}
