import test from 'ava';
import { hasInvisible, mrkdwnLine, visible, visibleLine, visibleNotification } from '../../../collector/sinks/text.js';
import { shellNotification } from '../../helpers/notification.js';

// Each character a person cannot see, or that reorders what they see, and how it is shown.
const table: [string, string, string][] = [
  ['right-to-left override', '\u202e', '\\u202e'],
  ['left-to-right embedding', '\u202a', '\\u202a'],
  ['pop directional formatting', '\u202c', '\\u202c'],
  ['first strong isolate', '\u2068', '\\u2068'],
  ['pop directional isolate', '\u2069', '\\u2069'],
  ['left-to-right mark', '\u200e', '\\u200e'],
  ['right-to-left mark', '\u200f', '\\u200f'],
  ['arabic letter mark', '\u061c', '\\u061c'],
  ['zero-width space', '\u200b', '\\u200b'],
  ['zero-width non-joiner', '\u200c', '\\u200c'],
  ['zero-width joiner', '\u200d', '\\u200d'],
  ['word joiner', '\u2060', '\\u2060'],
  ['byte order mark', '\ufeff', '\\ufeff'],
  ['soft hyphen', '\u00ad', '\\u00ad'],
  ['tag character', '\u{e0041}', '\\u{e0041}'],
  ['escape (terminal colours)', '\u001b', '\\u001b'],
  ['bell', '\u0007', '\\u0007'],
  ['C1 control', '\u0085', '\\u0085'],
  ['line separator', '\u2028', '\\u2028'],
  ['carriage return', '\r', '\\r'],
  ['lone surrogate', '\ud800', '\ufffd'],
  ['a typed backslash-u (cannot pass for an escape of ours)', '\\u202e', '\\\\u202e'],
];

for (const [what, ch, shown] of table) {
  test(`visible: ${what} is shown as ${shown}`, (t) => {
    t.is(visibleLine(`a${ch}b`), `a${shown}b`);
    t.is(visible(`a${ch}b`), `a${shown}b`);
    t.is(hasInvisible(`a${ch}b`), ch !== '\\u202e');
    t.false(hasInvisible(visibleLine(`a${ch}b`)));
  });
}

test('visible: ordinary text, accents, CJK, RTL letters and emoji stay as they are', (t) => {
  for (const s of ['/usr/bin/dash -c id', 'café naïve', '日本語', 'שלום مرحبا', '🔴 ✅', 'tab\tand']) {
    if (!s.includes('\t')) t.is(visibleLine(s), s);
    t.is(visible(s), s);
  }
  t.false(hasInvisible('/usr/bin/dash -c id'));
});

test('visible keeps line feeds and tabs; visibleLine shows them', (t) => {
  t.is(visible('a\nb\tc'), 'a\nb\tc');
  t.is(visibleLine('a\nb\tc'), 'a\\nb\\tc');
});

test('the classic trick: an override makes "exe.gnp" read as "png.exe"; shown, it cannot', (t) => {
  const name = 'invoice\u202egnp.exe';
  t.is(visibleLine(name), 'invoice\\u202egnp.exe');
});

test('mrkdwnLine: entities, look-alikes for markup, one line', (t) => {
  t.is(mrkdwnLine('<!channel> & *b* _i_ ~s~ `c` a_b\nx'), '&lt;!channel&gt; &amp; ∗b∗ ˍiˍ ∼s∼ ˋcˋ a_b\\nx');
});

test('visibleNotification: every text field a person reads is made visible; keys stay', (t) => {
  const bad = 'x\u202ey\u200b';
  const n = visibleNotification(
    shellNotification(
      { ruleReason: bad, team: bad, actor: bad, comment: bad },
      { example: bad, explanation: bad, baselineKey: bad, image: bad, nearest: [bad], nodes: [bad], pods: [bad], namespace: bad, reason: bad, fingerprint: 'ab'.repeat(16) },
    ),
  );
  const texts = [n.ruleReason, n.team, n.actor, n.comment ?? '', n.example, n.explanation, n.baselineKey, n.image, ...n.nearest, ...n.nodes, ...n.pods, n.namespace, n.reason, n.description];
  for (const x of texts) t.false(hasInvisible(x), x);
  t.is(n.example, 'x\\u202ey\\u200b');
  t.is(n.fingerprint, 'ab'.repeat(16));
});
