import test from 'ava';
import { SLACK_LIMITS, SlackConfigSchema, buildSlackPayload, createSlackSink, slackText, type SlackConfig } from '../../../collector/sinks/slack.js';
import { shellNotification } from '../../helpers/notification.js';
import { startRecorder } from '../../helpers/recorder.js';

type Block = { type: string; text?: { type: string; text: string }; fields?: { type: string; text: string }[]; elements?: { type: string; text: string }[] };

function config(url: string, extra: Record<string, unknown> = {}): SlackConfig {
  return SlackConfigSchema.parse({ type: 'slack', name: 'sec-alerts', webhookUrl: url, minInterval: 0, retry: { baseDelay: 5, maxDelay: 10 }, ...extra });
}

/** Block Kit limits checked on any payload (see SLACK_LIMITS for the source). */
function limitViolations(p: { text: string; blocks: Block[] }): string[] {
  const errors: string[] = [];
  if (p.text.length === 0 || p.text.length > 40_000) errors.push('text fallback missing or too long');
  if (p.blocks.length > 50) errors.push('more than 50 blocks');
  for (const b of p.blocks) {
    if (b.type === 'header' && (b.text?.type !== 'plain_text' || b.text.text.length > SLACK_LIMITS.header)) errors.push('header');
    if (b.type === 'section' && b.text && b.text.text.length > SLACK_LIMITS.sectionText) errors.push('section text');
    if (b.fields && (b.fields.length > SLACK_LIMITS.fields || b.fields.some((f) => f.text.length > SLACK_LIMITS.field))) errors.push('fields');
    if (b.type === 'context' && (b.elements?.length ?? 0) > SLACK_LIMITS.contextElements) errors.push('context');
  }
  return errors;
}

test('limit checker: it can fail (header over 150, section over 3,000, over 50 blocks, no fallback)', (t) => {
  const ok = buildSlackPayload(shellNotification()) as { text: string; blocks: Block[] };
  t.deepEqual(limitViolations({ ...ok, text: '' }), ['text fallback missing or too long']);
  t.deepEqual(limitViolations({ ...ok, blocks: [{ type: 'header', text: { type: 'plain_text', text: 'h'.repeat(151) } }] }), ['header']);
  t.deepEqual(limitViolations({ ...ok, blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 's'.repeat(3001) } }] }), ['section text']);
  t.deepEqual(limitViolations({ ...ok, blocks: Array.from({ length: 51 }, () => ({ type: 'divider' })) }), ['more than 50 blocks']);
});

test('escaping: &, < and > as entities; *, ~, ` and _ at a word edge as look-alikes; invisible characters shown', (t) => {
  t.is(slackText('a & b <!channel> <@U123> c > d *bold* _it_ ~x~ `c` site_packages', 500), 'a &amp; b &lt;!channel&gt; &lt;@U123&gt; c &gt; d ∗bold∗ ˍitˍ ∼x∼ ˋcˋ site_packages');
  t.is(slackText('a\nb\u202ec\u200bd', 100), 'a\\nb\\u202ec\\u200bd');
  const cut = slackText('x'.repeat(8) + '&&&&', 12);
  t.true(cut.length <= 12);
  t.notRegex(cut, /&[a-z]*…$/, 'no half entity before the ellipsis');
});

test('payload: header, text section, fields, context; a text fallback', (t) => {
  const p = buildSlackPayload(shellNotification()) as { text: string; blocks: Block[] };
  t.deepEqual(p.blocks.map((b) => b.type), ['header', 'section', 'section', 'context']);
  t.deepEqual(limitViolations(p), []);
  t.is(p.blocks[0]!.text!.text, '🔴 CRITICAL · nginx: new process /usr/bin/dash -c id;uname -a (parent nginx, root)');
  t.regex(p.text, /^\[CRITICAL\] nginx: new process \/usr\/bin\/dash/);
  t.regex(p.blocks[1]!.text!.text, /`\/usr\/bin\/dash -c id;uname -a`/);
  const fields = Object.fromEntries(p.blocks[2]!.fields!.map((f) => f.text.split('\n') as [string, string]));
  t.is(fields['*Image*'], 'docker.io/library/nginx');
  t.is(fields['*Count*'], '3');
  t.is(fields['*Team*'], 'storefront');
  t.is(fields['*Pods*'], 'shop/web-7d9f-abcde, shop/web-7d9f-fghij');
  t.regex(p.blocks[3]!.elements![0]!.text, /<https:\/\/driftwatch\.example\.com\/api\/v1\/alerts\/3f9a2c0d1e4b5a697887766554433221\|3f9a2c0d1e4b>/);
});

test('payload: a hostile command line cannot mention @channel, make a link or break out of code', (t) => {
  const n = shellNotification({}, { example: 'sh -c "echo <!channel> <https://evil.example|click> & `id` > /dev/null"', explanation: 'e <!here>' });
  const p = buildSlackPayload(n) as { text: string; blocks: Block[] };
  const all = JSON.stringify(p.blocks.slice(1)) + p.text;
  t.false(all.includes('<!channel>'));
  t.false(all.includes('<!here>'));
  t.false(all.includes('<https://evil'));
  t.regex(p.blocks[1]!.text!.text, /`sh -c "echo &lt;!channel&gt; &lt;https:\/\/evil\.example\|click&gt; &amp; ˋidˋ &gt; \/dev\/null"`/);
});

test('payload: lengths stay within Block Kit limits on huge input', (t) => {
  const n = shellNotification({ ruleReason: 'r'.repeat(10_000) }, { example: '<'.repeat(50_000), explanation: '&'.repeat(50_000), baselineKey: 'k'.repeat(5000), pods: Array.from({ length: 200 }, (_, i) => `ns/${'p'.repeat(300)}${i}`) });
  t.deepEqual(limitViolations(buildSlackPayload(n) as { text: string; blocks: Block[] }), []);
});

test('payload: acknowledge and resolve are short and name the actor', (t) => {
  const p = buildSlackPayload(shellNotification({ action: 'resolve', actor: 'alice <admin>' })) as { text: string; blocks: Block[] };
  t.deepEqual(p.blocks.map((b) => b.type), ['header', 'section', 'context']);
  t.regex(p.blocks[0]!.text!.text, /^✅ Resolved · CRITICAL/);
  t.is(p.blocks[1]!.text!.text, 'Resolved by *alice &lt;admin&gt;*');
  t.regex(p.text, /^Resolved · /);
});

test('over HTTP: the webhook receives the exact JSON body', async (t) => {
  const rec = await startRecorder(t, () => ({ status: 200, body: 'ok' }));
  const n = shellNotification();
  await createSlackSink(config(`${rec.url}/services/T000/B000/XXXX`)).send(n, AbortSignal.timeout(5000));
  t.is(rec.received.length, 1);
  t.is(rec.received[0]!.path, '/services/T000/B000/XXXX');
  t.is(rec.received[0]!.headers['content-type'], 'application/json');
  t.deepEqual(JSON.parse(rec.received[0]!.body), JSON.parse(JSON.stringify(buildSlackPayload(n))));
});

test('over HTTP: messages to one webhook leave minInterval apart', async (t) => {
  // Departure spacing is what the sink controls; arrival times on a loaded machine are not, so the
  // clock and the waits are injected: three concurrent sends must wait 0, 150 and 300 ms.
  const rec = await startRecorder(t, () => ({ status: 200, body: 'ok' }));
  const t0 = 1_700_000_000_000;
  const waits: number[] = [];
  const sink = createSlackSink(config(rec.url, { minInterval: 150 }), {
    now: () => t0,
    sleep: async (ms: number) => {
      waits.push(ms);
    },
  });
  await Promise.all([0, 1, 2].map(() => sink.send(shellNotification(), AbortSignal.timeout(5000))));
  t.is(rec.received.length, 3);
  t.deepEqual(waits.sort((a, b) => a - b), [150, 300]);
  // A send after the reserved slots have passed waits for nothing.
  const later = createSlackSink(config(rec.url, { minInterval: 150 }), { now: () => t0, sleep: async (ms: number) => void waits.push(-ms) });
  await later.send(shellNotification(), AbortSignal.timeout(5000));
  t.is(waits.length, 2);
});

test('over HTTP: Slack errors (404 no_service, 410 channel_is_archived) are rejected without retry, and the URL path stays out of the error', async (t) => {
  const rec = await startRecorder(t, () => ({ status: 404, body: 'no_service /services/T000/B000/XXXX' }));
  const err = await t.throwsAsync(createSlackSink(config(`${rec.url}/services/T000/B000/XXXX`)).send(shellNotification(), AbortSignal.timeout(5000)));
  t.is((err as { code?: string }).code, 'rejected');
  t.is(rec.received.length, 1);
  t.false(err!.message.includes('XXXX'), err!.message);
  t.regex(err!.message, /HTTP 404: no_service \[redacted\]/);
});

test('payload: markup and invisible characters are inert in every field, the fallback and the explanation line included', (t) => {
  const hostile = '*bold* _it_ ~s~ `c`\nline2 \u202egnp.exe \u200b';
  const n = shellNotification(
    { ruleReason: hostile, team: hostile },
    { example: hostile, explanation: hostile, baselineKey: `docker.io/${hostile}`, image: `docker.io/${hostile}`, pods: [`ns/${hostile}`], nodes: [hostile], namespace: hostile, entry: { type: 'process', exe: `/tmp/${hostile}`, parent: 'sh', user: 'root', args: '' } },
  );
  const p = buildSlackPayload(n) as { text: string; blocks: Block[] };
  const texts = [p.text, p.blocks[0]!.text!.text, p.blocks[1]!.text!.text, ...p.blocks[2]!.fields!.map((f) => f.text), p.blocks[3]!.elements![0]!.text];
  for (const x of texts) t.notRegex(x, /[\u202a-\u202e\u2066-\u2069\u200b-\u200f\ufeff\u2060\u061c]/u, x);
  // The header is plain_text: nothing formats there. Every mrkdwn text is inert.
  for (const x of texts.filter((_, i) => i !== 1)) {
    t.false(x.includes('*bold*') || x.includes('_it_') || x.includes('~s~') || x.includes('`c`'), x);
  }
  t.false(p.text.includes('\n'), 'the fallback is one line');
  t.true(p.text.includes('\\u202egnp.exe'), 'the override is shown, escaped');
  t.regex(p.blocks[1]!.text!.text.split('\n')[1]!, /^∗bold∗ ˍitˍ ∼s∼ ˋcˋ\\nline2 \\u202egnp\.exe \\u200b$/, 'the explanation line');
  t.deepEqual(limitViolations(p), []);
});

test('payload: the acknowledge or resolve comment travels, escaped', (t) => {
  const p = buildSlackPayload(shellNotification({ action: 'acknowledge', actor: 'alice', comment: 'on it *now* <!here>' })) as { text: string; blocks: Block[] };
  t.is(p.blocks[1]!.text!.text, 'Acknowledged by *alice*\n>on it ∗now∗ &lt;!here&gt;');
});
