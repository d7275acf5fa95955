/**
 * Text that people read (Slack, PagerDuty, Alertmanager annotations, webhook text fields) comes from
 * hostile places: command lines, image names, pod names. Characters that change how text *looks*
 * without being seen would let an attacker make `/tmp/x\u202e/hs.nib/` read as a harmless path, or hide
 * part of a command. The one rule, here and nowhere else: such characters are shown as escapes.
 *
 * Made visible (as `\u202e`, `\u{e0001}` above the BMP):
 * - every format character (Unicode category Cf): the bidi embeddings and overrides U+202A–202E,
 *   isolates U+2066–2069, marks U+200E/200F and U+061C, zero-width U+200B–200D, U+2060, U+FEFF, soft
 *   hyphen, tag characters;
 * - every control character (Cc) except, in multi-line text, the line feed and tab; the line and
 *   paragraph separators U+2028/2029; lone surrogates become U+FFFD (they make invalid UTF-8);
 * - a backslash before `u` is doubled, so a literal `\u202e` typed by an attacker reads `\\u202e` and
 *   cannot pass for one of ours: every escape shown stands for exactly one hidden character.
 */

import type { Notice, Notification } from './sink.js';

const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|\\(?=u)|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/gu;
const INVISIBLE_KEEP_LINES = /(?![\n\t])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|\\(?=u)|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/gu;

function escape(ch: string): string {
  if (ch === '\\') return '\\\\';
  const cp = ch.codePointAt(0) as number;
  if (cp >= 0xd800 && cp <= 0xdfff) return '\ufffd';
  if (cp === 0x0a) return '\\n';
  if (cp === 0x0d) return '\\r';
  if (cp === 0x09) return '\\t';
  return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
}

/** `text` on one line with every invisible, bidi and control character (line breaks included) escaped. */
export function visibleLine(text: string): string {
  return text.replace(INVISIBLE, escape);
}

/** `text` with every invisible, bidi and control character escaped, keeping line feeds and tabs. */
export function visible(text: string): string {
  return text.replace(INVISIBLE_KEEP_LINES, escape);
}

const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/u;

/** Whether `text` holds an invisible, bidi or control character (what visibleLine escapes, backslashes aside). */
export function hasInvisible(text: string): boolean {
  return HIDDEN.test(text);
}

/**
 * Slack mrkdwn, made inert: `&`, `<`, `>` as the entities Slack asks for (so no link, mention or
 * `<!channel>`), and the formatting characters `*`, `~`, `` ` `` and `_` at a word's edge as
 * look-alikes (∗ ∼ ˋ ˍ), since mrkdwn has no backslash escape: a command line cannot turn bold,
 * italic, struck or code. An `_` inside a word (`site_packages`) formats nothing and stays. Invisible
 * characters and line breaks are made visible too: the result is one line.
 */
export function mrkdwnLine(text: string): string {
  return visibleLine(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\*/g, '∗')
    .replace(/(?<![\p{L}\p{N}])_|_(?![\p{L}\p{N}])/gu, 'ˍ')
    .replace(/~/g, '∼')
    .replace(/`/g, 'ˋ');
}

/**
 * Look-alikes of the characters issue trackers act on in single-line text (a title): `@name`
 * mentions and notifies, `#12` / `!12` / `~label` / `%milestone` / `&epic` reference, `[x](y)` links,
 * `` ` `` formats, `<` and `>` open HTML. Look-alikes rather than a zero-width joiner after each:
 * visibleLine shows every invisible character as an escape (a joiner would read `@\u200d`), and a
 * look-alike is read the same by a person while no tracker parses it.
 */
const TRACKER_LOOK_ALIKES: Readonly<Record<string, string>> = Object.freeze({
  '@': '\uff20', // ＠
  '#': '\uff03', // ＃
  '!': '\uff01', // ！
  '~': '\u223c', // ∼ (as in mrkdwnLine)
  '%': '\uff05', // ％
  '&': '\uff06', // ＆
  '[': '\uff3b', // ［
  ']': '\uff3d', // ］
  '`': '\u02cb', // ˋ (as in mrkdwnLine)
  '<': '\uff1c', // ＜
  '>': '\uff1e', // ＞
});

/** `text` on one line (visibleLine) with every character a tracker acts on in a title replaced by its look-alike. */
export function trackerLine(text: string): string {
  return visibleLine(text).replace(/[@#!~%&[\]`<>]/g, (ch) => TRACKER_LOOK_ALIKES[ch] ?? ch);
}

/**
 * `n` with every text field a person reads made visible (one line each). Keys stay as they are: the
 * fingerprint (a dedup key), the URL (checked by each sink) and the structured `entry` (data for
 * programs; its text is shown through `description`).
 */
export function visibleNotification(n: Notification): Notification {
  const line = (xs: readonly string[]) => xs.map(visibleLine);
  return {
    ...n,
    ruleId: visibleLine(n.ruleId),
    ruleReason: visibleLine(n.ruleReason),
    baselineKey: visibleLine(n.baselineKey),
    image: visibleLine(n.image),
    description: visibleLine(n.description),
    ...(n.title !== undefined ? { title: visibleLine(n.title) } : {}),
    example: visibleLine(n.example),
    reason: visibleLine(n.reason),
    explanation: visibleLine(n.explanation),
    nearest: line(n.nearest),
    nodes: line(n.nodes),
    pods: line(n.pods),
    namespace: visibleLine(n.namespace),
    team: visibleLine(n.team),
    actor: visibleLine(n.actor),
    comment: visibleLine(n.comment ?? ''),
    ...(n.package ? { package: { ...n.package, text: visibleLine(n.package.text), name: visibleLine(n.package.name), version: visibleLine(n.package.version), purl: visibleLine(n.package.purl), note: visibleLine(n.package.note) } } : {}),
  };
}

/** `n` with its title and lines made visible. */
export function visibleNotice(n: Notice): Notice {
  return { ...n, title: visibleLine(n.title), team: visibleLine(n.team), lines: n.lines.map(visibleLine) };
}
