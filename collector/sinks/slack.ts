/**
 * Slack incoming webhook: one message per notification, as Block Kit blocks (header, a section of
 * text, a section of fields, a context line) with a plain `text` fallback for notifications and
 * clients that do not render blocks.
 *
 * Slack's rules this follows (api.slack.com: "Formatting text for app surfaces", Block Kit reference,
 * "Sending messages using incoming webhooks"):
 * - in mrkdwn text, `&`, `<` and `>` are control characters and must be sent as `&amp;`, `&lt;`,
 *   `&gt;`; so a command line can never become a link or an @channel; `*`, `_`, `~` and `` ` ``
 *   format and have no escape, so ./text.ts shows them as look-alikes;
 * - header text is plain_text of at most 150 characters; a section's text at most 3000; at most 10
 *   fields of at most 2000 each; a context at most 10 elements; at most 50 blocks;
 * - about one message per second per webhook: sends are spaced by `minInterval`.
 */
import { z } from 'zod';
import { durationMs } from '../../runtime/config.js';
import { deliveryShape, httpUrl, post, retryPolicyOf, sleep, urlSecrets, withRetry } from './http.js';
import { isoTime, sinkName, titleOf, truncate, type Notice, type Notification, type Sink, type SinkDeps } from './sink.js';
import { mrkdwnLine, visibleLine } from './text.js';

/** Config of one Slack sink. */
export const SlackConfigSchema = z.strictObject({
  type: z.literal('slack'),
  name: sinkName,
  /** The incoming webhook URL (`https://hooks.slack.com/services/...`): a secret. */
  webhookUrl: httpUrl,
  /** Least time between two messages to this webhook. */
  minInterval: durationMs.pipe(z.number().int().min(0).max(60_000)).default(1000),
  ...deliveryShape,
});

/** A parsed Slack config. */
export type SlackConfig = z.output<typeof SlackConfigSchema>;

/** Block Kit limits (see the file comment). */
export const SLACK_LIMITS = Object.freeze({ header: 150, sectionText: 3000, field: 2000, fields: 10, contextElements: 10, text: 3000, blocks: 50 });

/** Escape text for mrkdwn and cut it to `max` characters without leaving half an entity (`&am…`). See mrkdwnLine. */
export function slackText(text: string, max: number): string {
  const escaped = mrkdwnLine(text);
  if (escaped.length <= max) return escaped;
  let cut = truncate(escaped, max).slice(0, -1);
  const amp = cut.lastIndexOf('&');
  if (amp !== -1 && cut.indexOf(';', amp) === -1) cut = cut.slice(0, amp);
  return `${cut}…`;
}

/** Plain text (headers): nothing is formatted there, but invisible characters are shown. */
function plain(text: string, max: number): string {
  return truncate(visibleLine(text), max);
}

/** Text shown inside a code span (mrkdwn inside it is not formatted; mrkdwnLine's look-alikes keep a backtick from ending it). */
function code(text: string, max: number): string {
  return `\`${slackText(text, max - 2)}\``;
}

const SEVERITY_ICON: Record<Notification['severity'], string> = { critical: '🔴', high: '🟠', medium: '🟡', low: '🔵' };
const ACTION_LABEL: Record<Notification['action'], string> = { trigger: '', acknowledge: 'Acknowledged · ', resolve: 'Resolved · ' };

/** A link Slack can render: only http(s) URLs without the characters that end a link. */
function link(url: string, label: string): string {
  if (!/^https?:\/\/[^\s<>|]+$/.test(url) || url.length > 1000) return slackText(label, 200);
  return `<${url.replace(/&/g, '&amp;')}|${slackText(label, 200)}>`;
}

function list(xs: readonly string[]): string {
  if (xs.length === 0) return '-';
  const shown = xs.slice(0, 5).join(', ');
  return xs.length > 5 ? `${shown} (+${xs.length - 5})` : shown.length > 0 ? shown : '-';
}

/**
 * The JSON body of the incoming webhook. Pure. Every value from the alert goes through slackText
 * (mrkdwn made inert, invisible characters shown) or, in the plain-text header, visibleLine: the
 * fallback `text` too, which is what notifications and some clients show.
 */
export function buildSlackPayload(n: Notification) {
  const title = titleOf(n);
  const sev = n.severity.toUpperCase();
  const done = n.action === 'resolve' ? 'Resolved' : 'Acknowledged';
  const header = plain(`${n.action === 'trigger' ? SEVERITY_ICON[n.severity] : n.action === 'resolve' ? '✅' : '👀'} ${ACTION_LABEL[n.action]}${sev} · ${title}`, SLACK_LIMITS.header);
  const text = truncate(`${ACTION_LABEL[n.action]}[${sev}] ${slackText(title, 1500)} (${slackText(n.ruleReason, 1000)})`, SLACK_LIMITS.text);
  const comment = n.comment ? `\n>${slackText(n.comment, 1000)}` : '';
  const lines =
    n.action === 'trigger'
      ? [
          `*${slackText(n.ruleReason, 500)}*`,
          slackText(n.explanation, 1000),
          `*Example:* ${code(n.example, 1000)}`,
          n.package ? `*Package:* ${slackText(n.package.text, 1000)}` : '',
          n.nearest.length > 0 ? `*Nearest known:* ${n.nearest.slice(0, 3).map((x) => code(x, 150)).join(', ')}` : '',
          n.actor !== '' ? `Acknowledged by *${slackText(n.actor, 100)}*${comment}` : '',
        ]
      : [`${n.actor !== '' ? `${done} by *${slackText(n.actor, 100)}*` : done}${comment}`];
  const field = (label: string, value: string) => ({ type: 'mrkdwn', text: `*${label}*\n${slackText(value, SLACK_LIMITS.field - label.length - 4)}` });
  const fields = [
    field('Image', n.baselineKey || '-'),
    field('Kind', n.kind),
    field('Namespace', n.namespace || '-'),
    field('Team', n.team || '-'),
    field('Count', String(n.count)),
    field('First / last seen', `${isoTime(n.firstSeen)} / ${isoTime(n.lastSeen)}`),
    field('Pods', list(n.pods)),
    field('Nodes', list(n.nodes)),
  ].slice(0, SLACK_LIMITS.fields);
  const context = [`Driftwatch · rule ${code(n.ruleId, 80)} · alert ${link(n.url, n.fingerprint.slice(0, 12))}`];
  return {
    text,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: header, emoji: true } },
      { type: 'section', text: { type: 'mrkdwn', text: truncate(lines.filter((l) => l !== '').join('\n'), SLACK_LIMITS.sectionText) } },
      ...(n.action === 'trigger' ? [{ type: 'section', fields }] : []),
      { type: 'context', elements: context.slice(0, SLACK_LIMITS.contextElements).map((t) => ({ type: 'mrkdwn', text: t })) },
    ].slice(0, SLACK_LIMITS.blocks),
  };
}

/** The JSON body of a notice. Pure. */
export function buildSlackNotice(n: Notice) {
  const icon = n.kind === 'digest' ? '📋' : '⏳';
  const body = n.lines.length === 0 ? '-' : n.lines.slice(0, 50).map((l) => `• ${slackText(l, 300)}`).join('\n');
  return {
    text: slackText(n.title, SLACK_LIMITS.text),
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: plain(`${icon} ${n.title}`, SLACK_LIMITS.header), emoji: true } },
      { type: 'section', text: { type: 'mrkdwn', text: truncate(body, SLACK_LIMITS.sectionText) } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `Driftwatch${n.team ? ` · team ${slackText(n.team, 100)}` : ''}${n.url ? ` · ${link(n.url, 'open')}` : ''}` }] },
    ],
  };
}

/** Create a Slack sink. Messages to one webhook leave at least `minInterval` apart. */
export function createSlackSink(config: SlackConfig, deps: SinkDeps = {}): Sink {
  const now = deps.now ?? Date.now;
  const policy = retryPolicyOf(config);
  let nextSlot = 0;
  const deliver = (body: string, signal: AbortSignal) =>
    withRetry(
      async () => {
        // Reserve a slot before waiting, so concurrent sends queue up instead of bunching.
        const t = now();
        const slot = Math.max(t, nextSlot);
        nextSlot = slot + config.minInterval;
        if (slot > t) await (deps.sleep ?? sleep)(slot - t, signal);
        return post({ url: config.webhookUrl, headers: {}, body, timeoutMs: config.timeout, maxResponseBytes: config.maxResponseBytes, secrets: urlSecrets(config.webhookUrl), now }, signal);
      },
      policy,
      signal,
      deps,
    );
  return {
    name: config.name,
    type: 'slack',
    async send(n, signal) {
      await deliver(JSON.stringify(buildSlackPayload(n)), signal);
    },
    async notify(n, signal) {
      await deliver(JSON.stringify(buildSlackNotice(n)), signal);
    },
  };
}

/** The Slack sink type, for the registry in ./index.ts. */
export const slackSinkType = { type: 'slack', schema: SlackConfigSchema, create: createSlackSink } as const;
