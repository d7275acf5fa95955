/**
 * One ticket per image repository, in an issue tracker (GitHub Issues ./github.ts, GitLab Issues
 * ./gitlab.ts, Jira Cloud ./jira.ts). This file holds what the three share: the life of the ticket,
 * the config keys, the secret token, and the text of a ticket (pure).
 *
 * The life of an image's ticket, driven by the alert notifications the outbox hands the sink:
 * - the first alert of an image (trigger) opens a ticket: its title names the image, its body says
 *   why (the alert's rule, explanation, example, where), the owner team, labels and a severity label;
 * - each further alert of the image adds one comment (an alert already groups its deviations);
 * - a resolve (resolved, or accepted) of the image's last open alert closes the ticket; an acknowledge
 *   changes nothing (the alert is still open);
 * - an alert that fires again reopens the closed ticket and comments;
 * - a ticket deleted in the tracker (404 or 410) is replaced by a new one, which says so.
 * New tickets are bounded per sink (maxNewTicketsPerHour): a node names the repositories it reports,
 * so without a bound it could open a ticket per made-up repository. Past it the alert is skipped.
 * The ticket's id, its state and the image's open alerts live in the store (TicketStore, one row per
 * sink and image), so a restart finds the ticket; each step holds the row's claim, so of two replicas
 * with two alerts of one image, one opens the ticket and the other (refused the claim, retried by the
 * outbox) comments on it.
 *
 * Delivery is at least once: a step is recorded right after the tracker took it, and a redelivered
 * trigger or resolve that the store already reflects does nothing. A crash between the tracker's
 * answer and the record (milliseconds) can repeat that one step: a comment twice, or, for the very
 * first alert, a second ticket (none of the three APIs takes an idempotency key for issue creation).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import type { Severity } from '../../core/severity.js';
import type { Logger } from '../../runtime/logger.js';
import type { Async } from '../store/async.js';
import type { ImageTicket, TicketStore } from '../store/store.js';
import { DeliveryError, deliveryShape, post, retryPolicyOf, withRetry } from './http.js';
import { categoryOf, isoTime, SkippedDelivery, titleOf, truncate, type Notification, type Sink, type SinkDeps } from './sink.js';
import { trackerLine, visibleNotification } from './text.js';

/** What a ticket sink needs besides its config: the store's ticket slice and this replica's name. */
export interface TicketDeps extends SinkDeps {
  tickets?: Async<TicketStore> | undefined;
  /** This replica's id (the holder of ticket claims). */
  owner?: string | undefined;
  logger?: Logger | undefined;
  /** Where `driftwatch_collector_ticket_actions_total` goes (the collector's registry). */
  registry?: Registry | undefined;
}

/** What a ticket sink did to a ticket in the tracker (`held`: a ticket it did not open, maxNewTicketsPerHour reached). */
export type TicketAction = 'opened' | 'commented' | 'closed' | 'reopened' | 'replaced' | 'held';

/** The counter of ticket actions on `registry`, created once per registry. */
function ticketActions(registry: Registry | undefined): Counter<'sink' | 'type' | 'action'> {
  const name = 'driftwatch_collector_ticket_actions_total';
  return (
    (registry?.getSingleMetric(name) as Counter<'sink' | 'type' | 'action'> | undefined) ??
    new Counter({ name, help: 'What ticket sinks did in the issue tracker, by sink and action (opened, commented, closed, reopened, replaced: a deleted ticket opened anew; held: a new ticket not opened, maxNewTicketsPerHour reached)', labelNames: ['sink', 'type', 'action'], registers: registry ? [registry] : [] })
  );
}

/** How long a ticket claim holds (renewed before each call to the tracker); a replica that died frees it after this. */
export const TICKET_CLAIM_MS = 300_000;

/** Wait before the outbox tries again when another replica holds the image's ticket. */
export const TICKET_BUSY_RETRY_MS = 2_000;

/** Longest title and body sent (GitHub takes far more; Jira's summary stops at 255). */
export const TICKET_TEXT_LIMITS = Object.freeze({ title: 255, text: 1024, list: 20 });

/** Where the API token is read from: a file (a mounted Secret, re-read at each use so a rotation takes) or an environment variable. Never the config file. */
const tokenSource = {
  tokenFile: z.string().min(1).max(4096).optional(),
  tokenEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be an environment variable name').optional(),
};

/** A tracker label: what all three accept (no comma: GitLab's list separator; no space: Jira's rule). */
const label = z.string().regex(/^[^\s,]{1,50}$/, 'must be 1-50 characters without spaces or commas');

/** Config keys every ticket sink has. */
export const ticketShape = {
  ...tokenSource,
  /** Labels on every ticket. */
  labels: z.array(label).max(20).default(['driftwatch']),
  /** The severity label, `{severity}` replaced by the first alert's (critical, high, medium, low); '' for none. */
  severityLabel: z
    .string()
    .max(50)
    .regex(/^([^\s,]*\{severity\}[^\s,]*)?$/, 'must hold {severity} and no spaces or commas, or be empty')
    .default('severity:{severity}'),
  /**
   * New tickets (opened or replacing a deleted one) this sink opens in any hour, per collector
   * replica. Every new image repository opens a ticket, and a node names the repositories it
   * reports: past this bound its alerts are not ticketed (skipped, counted, logged). Comments,
   * closing and reopening existing tickets are not bounded.
   */
  maxNewTicketsPerHour: z.number().int().min(1).max(10_000).default(20),
  ...deliveryShape,
  /** Ticket responses echo the body and carry user objects: more room than a webhook's answer. */
  maxResponseBytes: z.number().int().min(4096).max(1 << 20).default(256 << 10),
};

/** The token keys' check: exactly one source. Issues name the key. */
export function tokenSourceIssue(c: { tokenFile?: string | undefined; tokenEnv?: string | undefined }): { path: string[]; message: string } | null {
  if (c.tokenFile !== undefined && c.tokenEnv !== undefined) return { path: ['tokenEnv'], message: 'give tokenFile or tokenEnv, not both' };
  if (c.tokenFile === undefined && c.tokenEnv === undefined) return { path: ['tokenFile'], message: 'the API token is needed: tokenFile (a file holding it, such as a mounted Secret) or tokenEnv (an environment variable); never in the config file' };
  return null;
}

/** Largest token file read. */
const MAX_TOKEN_BYTES = 16 << 10;

/** Reads the token now and at each use. */
export interface TokenReader {
  (): Promise<string>;
}

/**
 * The token of a sink, checked now (a missing file or variable stops startup naming the key) and
 * read again at each use, so a rotated Secret takes without a restart. Errors name the key, never the value.
 */
export function tokenReader(c: { tokenFile?: string | undefined; tokenEnv?: string | undefined }, env: NodeJS.ProcessEnv = process.env): TokenReader {
  const check = (raw: string | undefined): string => {
    const token = (raw ?? '').trim();
    if (token === '' || /[\r\n\0]/.test(token)) throw new DeliveryError('rejected', c.tokenFile !== undefined ? 'tokenFile holds no token' : `${c.tokenEnv} holds no token`, undefined, undefined);
    return token;
  };
  const fromFile = (buf: Buffer): string => {
    if (buf.length > MAX_TOKEN_BYTES) throw new DeliveryError('rejected', 'tokenFile is larger than a token', undefined, undefined);
    return check(buf.toString('utf8'));
  };
  try {
    if (c.tokenFile !== undefined) fromFile(readFileSync(c.tokenFile));
    else check(env[c.tokenEnv ?? '']);
  } catch (err) {
    const key = c.tokenFile !== undefined ? 'tokenFile' : 'tokenEnv';
    const code = (err as NodeJS.ErrnoException).code;
    throw new TokenSourceError(key, err instanceof DeliveryError ? err.message : `cannot read ${key} (${code ?? 'error'})`);
  }
  return async () => {
    if (c.tokenFile === undefined) return check(env[c.tokenEnv ?? '']);
    const buf = await readFile(c.tokenFile).catch((err: NodeJS.ErrnoException) => {
      throw new DeliveryError('unavailable', `cannot read tokenFile (${err.code ?? 'error'})`, undefined, undefined);
    });
    return fromFile(buf);
  };
}

/** The token could not be read at startup (the caller turns it into a ConfigError with the sink's path). */
export class TokenSourceError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
    this.name = 'TokenSourceError';
  }
}

/** The ticket in the tracker: its id and web address. */
export interface TicketRef {
  ref: string;
  url: string;
}

/** What a ticket is opened with. */
export interface TicketOpening {
  title: string;
  /** The first alert (made visible), for the body. */
  alert: Notification;
  labels: string[];
  /** The assignee for the alert's team, or undefined. */
  assignee: string | number | undefined;
  /** The ticket this one replaces (deleted in the tracker), or ''. */
  replaces: string;
}

/** The four calls a tracker makes; each throws a DeliveryError (status 404/410: the ticket is gone). */
export interface TicketTracker {
  open(t: TicketOpening, signal: AbortSignal): Promise<TicketRef>;
  comment(ref: string, text: TicketComment, signal: AbortSignal): Promise<void>;
  close(ref: string, signal: AbortSignal): Promise<void>;
  reopen(ref: string, signal: AbortSignal): Promise<void>;
}

/** A comment: a new alert of the image (`alert`, `again` when the ticket was closed), or why it closes (`closing`). */
export type TicketComment = { kind: 'alert' | 'again'; alert: Notification } | { kind: 'closing'; alert: Notification };

/** Whether `err` says the ticket is no longer there (deleted, transferred away). */
export function ticketGone(err: unknown): boolean {
  return err instanceof DeliveryError && (err.status === 404 || err.status === 410);
}

/**
 * The title of an image's ticket. The repository comes from a node's event: outside any fence, so
 * what trackers act on in a title (a `@group` mention notifies, `#1` references) becomes a look-alike.
 */
export function ticketTitle(image: string): string {
  return truncate(`Driftwatch: runtime drift in ${trackerLine(image)}`, TICKET_TEXT_LIMITS.title);
}

/** The labels of a new ticket: the configured ones and the severity label. */
export function ticketLabels(c: { labels: readonly string[]; severityLabel: string }, severity: Severity): string[] {
  const sev = c.severityLabel === '' ? [] : [c.severityLabel.replace('{severity}', severity)];
  return [...new Set([...c.labels, ...sev])];
}

/** The facts of one alert, one `name: value` line each, for a ticket body or comment. Values are hostile text made visible and bounded. */
export function alertFacts(raw: Notification): [string, string][] {
  const n = visibleNotification(raw);
  const list = (xs: readonly string[]) => (xs.length === 0 ? '' : xs.slice(0, TICKET_TEXT_LIMITS.list).map((x) => truncate(x, 256)).join(', ') + (xs.length > TICKET_TEXT_LIMITS.list ? `, … (${xs.length} in all)` : ''));
  const facts: [string, string][] = [
    ['alert', truncate(titleOf(n), TICKET_TEXT_LIMITS.text)],
    ['severity', n.severity],
    ['why', truncate(n.explanation, TICKET_TEXT_LIMITS.text)],
    ['rule', truncate(`${n.ruleId}: ${n.ruleReason}`, TICKET_TEXT_LIMITS.text)],
    ['example', truncate(n.example, TICKET_TEXT_LIMITS.text)],
    ['package', n.package ? truncate(n.package.text, TICKET_TEXT_LIMITS.text) : ''],
    ['seen', `${n.count} time${n.count === 1 ? '' : 's'}, first ${isoTime(n.firstSeen) || 'unknown'}, last ${isoTime(n.lastSeen) || 'unknown'}`],
    ['namespace', n.namespace],
    ['pods', list(n.pods)],
    ['nodes', list(n.nodes)],
    ['baseline', n.baselineKey],
    ['alert id', n.fingerprint],
  ];
  if (n.team !== '') facts.splice(2, 0, ['owner', n.team]);
  if (n.actor !== '') facts.push(['by', truncate(n.actor, 256)]);
  if (n.comment) facts.push(['comment', truncate(n.comment, TICKET_TEXT_LIMITS.text)]);
  return facts.filter(([, v]) => v !== '');
}

/** The sentence that heads a comment or a body. Fixed text only (no hostile value). */
export function commentLead(c: TicketComment | { kind: 'open'; replaces: string; alert: Notification }): string {
  switch (c.kind) {
    case 'open':
      return `Driftwatch saw containers of this image do what its baseline never did while it was learned.${c.replaces !== '' ? ` This ticket replaces ${c.replaces}, which was deleted.` : ''} Every alert of this image is added here as a comment; the ticket is closed when none of them is open, and reopened when one fires again.`;
    case 'alert':
      return 'A new alert for this image:';
    case 'again':
      return 'An alert for this image fires again, so this ticket is reopened:';
    case 'closing':
      return 'No alert of this image is open any more (the last one was resolved or accepted): closing this ticket.';
  }
}

/**
 * Markdown (GitHub, GitLab) of a lead sentence and an alert's facts. Every value an attacker could
 * shape sits inside one fenced code block whose fence is longer than any run of backticks in it: no
 * mention (`@team`), link, image, HTML or issue reference in it is rendered.
 */
export function markdownOf(lead: string, alert: Notification, link: string): string {
  const facts = alertFacts(alert).map(([k, v]) => `${k}: ${v}`).join('\n');
  const longest = Math.max(2, ...[...facts.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const linkLine = /^https?:\/\/[^\s()<>]+$/.test(link) ? `\n\n[The alert in Driftwatch](${link})` : '';
  return `${lead}\n\n${fence}text\n${facts}\n${fence}${linkLine}`;
}

/** Config every ticket sink has, as parsed. */
export interface TicketConfig {
  name: string;
  labels: string[];
  severityLabel: string;
  assignees: Record<string, string | number>;
  maxNewTicketsPerHour: number;
}

const HOUR_MS = 3_600_000;

/**
 * The hourly bound on new tickets: the times of the openings of the last hour (at most `max` of
 * them), and the alerts held since the last log line, logged at most once an hour.
 */
export function newTicketBudget(max: number, now: () => number) {
  const opened: number[] = [];
  let held = 0;
  let loggedAt = -Infinity;
  const forget = (t: number) => {
    while (opened.length > 0 && opened[0]! <= t - HOUR_MS) opened.shift();
  };
  return {
    /** Whether one more ticket may be opened now. */
    allows(): boolean {
      forget(now());
      return opened.length < max;
    },
    /** A ticket was opened. */
    spend(): void {
      forget(now());
      opened.push(now());
      if (opened.length > max) opened.shift();
    },
    /** An alert was held: the number held since the last report when one is due (first hold, then hourly), else 0. */
    hold(): number {
      held++;
      const t = now();
      if (t - loggedAt < HOUR_MS) return 0;
      loggedAt = t;
      const n = held;
      held = 0;
      return n;
    },
  };
}

/**
 * The ticket sink over a tracker: the life of each image's ticket (see the file comment), the
 * store's row claimed around each step.
 */
export function createTicketSink(type: string, config: TicketConfig, tracker: TicketTracker, deps: TicketDeps): Sink {
  const store = deps.tickets;
  if (!store) throw new Error(`${type} sinks keep their tickets in the store: createSinks needs deps.tickets`);
  const now = deps.now ?? Date.now;
  const owner = deps.owner ?? `collector-${process.pid}`;
  const log = deps.logger;
  const actions = ticketActions(deps.registry);
  const did = (action: TicketAction) => actions.inc({ sink: config.name, type, action });
  const budget = newTicketBudget(config.maxNewTicketsPerHour, now);

  /** Claim (or renew) the image's row; a refusal is retried by the outbox once the other replica is done. */
  async function claim(repository: string, alert: string) {
    const c = await store!.claimImageTicket(config.name, repository, alert, owner, now(), TICKET_CLAIM_MS);
    if (!c) throw new DeliveryError('unavailable', 'the ticket of this image is being changed by another replica', undefined, TICKET_BUSY_RETRY_MS);
    return c;
  }

  async function record(repository: string, change: Parameters<TicketStore['recordImageTicket']>[3]): Promise<void> {
    if (!(await store!.recordImageTicket(config.name, repository, owner, change))) {
      throw new DeliveryError('unavailable', 'lost the claim on this image\'s ticket to another replica', undefined, TICKET_BUSY_RETRY_MS);
    }
  }

  async function openNew(n: Notification, replaces: string, signal: AbortSignal): Promise<void> {
    if (!budget.allows()) {
      did('held');
      const held = budget.hold();
      if (held > 0) log?.warn({ held, maxNewTicketsPerHour: config.maxNewTicketsPerHour }, 'new tickets held: maxNewTicketsPerHour reached, alerts of new images are not ticketed (this is logged at most once an hour)');
      // Nothing recorded: the image's next alert tries again, once the hour has room.
      throw new SkippedDelivery('ticket-limit', `maxNewTicketsPerHour (${config.maxNewTicketsPerHour}) reached: no ticket opened for this image`);
    }
    const opened = await tracker.open(
      { title: ticketTitle(n.image), alert: n, labels: ticketLabels(config, n.severity), assignee: Object.hasOwn(config.assignees, n.team) ? config.assignees[n.team] : undefined, replaces },
      signal,
    );
    budget.spend();
    await record(n.image, { ref: opened.ref, url: opened.url, state: 'open', openedTicket: true, alertOpened: n.fingerprint, at: now() });
    did(replaces === '' ? 'opened' : 'replaced');
    if (replaces !== '') log?.warn({ image: n.image, previous: replaces, ticket: opened.ref }, 'the image\'s ticket was deleted in the tracker: opened a new one');
    else log?.info({ image: n.image, ticket: opened.ref }, 'opened the image\'s ticket');
  }

  async function onTrigger(ticket: ImageTicket, alertOpen: boolean, n: Notification, signal: AbortSignal): Promise<void> {
    // A redelivered trigger, or one of an alert the ticket already lists: nothing new to say.
    if (alertOpen && ticket.state === 'open') return;
    if (ticket.ref === '' || ticket.state === 'none') return openNew(n, ticket.ref === '' ? '' : displayRef(ticket), signal);
    try {
      if (ticket.state === 'closed') {
        await tracker.reopen(ticket.ref, signal);
        // Recorded before the comment: a retry after a failed comment comments, it does not reopen again.
        await record(n.image, { state: 'open', at: now() });
        did('reopened');
        await claim(n.image, n.fingerprint);
        await tracker.comment(ticket.ref, { kind: 'again', alert: n }, signal);
      } else {
        await tracker.comment(ticket.ref, { kind: 'alert', alert: n }, signal);
      }
      did('commented');
    } catch (err) {
      if (!ticketGone(err)) throw err;
      await claim(n.image, n.fingerprint);
      return openNew(n, displayRef(ticket), signal);
    }
    await record(n.image, { alertOpened: n.fingerprint, at: now() });
  }

  async function onResolve(ticket: ImageTicket, alertOpen: boolean, n: Notification, signal: AbortSignal): Promise<void> {
    // Not an alert this ticket lists (never told, or a redelivered resolve): nothing to change.
    if (!alertOpen) return;
    if (ticket.openAlerts > 1 || ticket.state !== 'open') return record(n.image, { alertClosed: n.fingerprint, at: now() });
    try {
      // Closed first: a retry after a failed comment closes again (a no-op) and comments once.
      await tracker.close(ticket.ref, signal);
      await claim(n.image, n.fingerprint);
      await tracker.comment(ticket.ref, { kind: 'closing', alert: n }, signal);
      did('closed');
    } catch (err) {
      if (!ticketGone(err)) throw err;
      // Deleted in the tracker: nothing to close; the image's next alert opens a new ticket.
      log?.warn({ image: n.image, ticket: ticket.ref }, 'the image\'s ticket was deleted in the tracker before it could be closed');
      return record(n.image, { alertClosed: n.fingerprint, state: 'none', at: now() });
    }
    await record(n.image, { alertClosed: n.fingerprint, state: 'closed', at: now() });
  }

  return {
    name: config.name,
    type,
    async send(n, signal) {
      // Tickets are per image: operational alerts (a silent agent) and storm summaries have none.
      if (categoryOf(n) !== 'deviation' || n.image === '' || n.action === 'acknowledge') return;
      const { ticket, alertOpen } = await claim(n.image, n.fingerprint);
      try {
        if (n.action === 'trigger') await onTrigger(ticket, alertOpen, n, signal);
        else await onResolve(ticket, alertOpen, n, signal);
      } finally {
        await store.releaseImageTicket(config.name, n.image, owner).catch((err: unknown) => log?.warn({ err, image: n.image }, 'could not release the claim on an image\'s ticket'));
      }
    },
  };
}

/**
 * How a ticket is named in the body of its replacement (outside the fence): its URL when it is a
 * plain https address, else its id. The URL is the tracker's answer (any string up to 2,048): no
 * space, markup, mention or bracket may reach the text around it.
 */
export function displayRef(t: Pick<ImageTicket, 'url' | 'ref'>): string {
  return /^https:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?(\/[A-Za-z0-9._~\/%+:=-]*)?$/.test(t.url) && t.url.length <= 2048 ? t.url : t.ref;
}

/** Assignees by owner team (a team's tickets are assigned to this tracker user). */
export function assigneeMap<T extends z.ZodType<string | number>>(user: T) {
  return z
    .record(z.string().min(1).max(128), user)
    .refine((m) => Object.keys(m).length <= 1000, 'at most 1000 teams')
    .default({});
}

/** One call to a tracker's API: method, path under the base URL, JSON body. */
export type TicketCall = (method: 'POST' | 'PUT' | 'PATCH' | 'GET', path: string, body: unknown, signal: AbortSignal) => Promise<unknown>;

/**
 * The HTTP calls of a tracker: `base` + path, the auth headers made from the token at each call,
 * retried as the sink's `retry:` says (429 and GitHub's rate-limited 403 wait for Retry-After or the
 * rate-limit reset; a longer wait goes back to the outbox). The answer is parsed JSON (null when empty).
 */
export function ticketHttp(
  base: string,
  config: { timeout: number; maxResponseBytes: number; retry: { maxAttempts: number; baseDelay: number; maxDelay: number; maxRetryAfter: number } },
  token: TokenReader,
  headersOf: (token: string) => Record<string, string>,
  deps: SinkDeps,
): TicketCall {
  const policy = retryPolicyOf(config);
  const root = base.replace(/\/+$/, '');
  return async (method, path, body, signal) => {
    const secret = await token();
    const res = await withRetry(
      () => post({ method, url: `${root}${path}`, headers: headersOf(secret), body: body === undefined ? '' : JSON.stringify(body), timeoutMs: config.timeout, maxResponseBytes: config.maxResponseBytes, secrets: [secret], now: deps.now }, signal),
      policy,
      signal,
      deps,
    );
    if (res.body.trim() === '') return null;
    if (res.truncated) throw new DeliveryError('unavailable', `the answer was larger than maxResponseBytes (${config.maxResponseBytes})`, res.status, undefined);
    try {
      return JSON.parse(res.body) as unknown;
    } catch (err) {
      throw new DeliveryError('rejected', 'the answer is not JSON', res.status, undefined, { cause: err });
    }
  };
}

/** Read `schema` out of a tracker's answer, or fail the delivery saying which call answered what. */
export function answerOf<T>(schema: z.ZodType<T>, answer: unknown, what: string): T {
  const r = schema.safeParse(answer);
  if (r.success) return r.data;
  throw new DeliveryError('rejected', `unexpected answer to ${what}`, undefined, undefined, { cause: r.error });
}
