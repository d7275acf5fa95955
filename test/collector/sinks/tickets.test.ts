/**
 * Ticket sinks (github, gitlab, jira) without a collector: their config (errors name the field, a
 * token never comes from the config file), their payloads against the publishers' own schemas
 * (fixtures/specs), the text an attacker can shape kept inert, and two replicas on one PostgreSQL
 * store racing for one image's ticket.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGitHubComment, buildGitHubIssue, buildGitHubState } from '../../../collector/sinks/github.js';
import { buildGitLabIssue } from '../../../collector/sinks/gitlab.js';
import { DeliveryError } from '../../../collector/sinks/http.js';
import { createSinks, parseSinksConfig } from '../../../collector/sinks/index.js';
import { buildJiraComment, buildJiraIssue, buildJiraTransition, transitionId } from '../../../collector/sinks/jira.js';
import { commentLead, displayRef, markdownOf, newTicketBudget, ticketLabels, ticketTitle, type TicketOpening } from '../../../collector/sinks/tickets.js';
import { openPostgresStore } from '../../../collector/store/postgres/index.js';
import { ConfigError } from '../../../runtime/config.js';
import { shellNotification } from '../../helpers/notification.js';
import { loadSpec, REPO_SPECS_DIR } from '../../helpers/openapi.js';
import { usePostgres } from '../../helpers/postgres.js';
import { adfValidator, requestSchema, startTracker } from '../../helpers/trackers.js';

const postgres = usePostgres(test);
const github = loadSpec('github-issues.json', REPO_SPECS_DIR, { annotations: ['x-github-breaking-changes'] });
const jira = loadSpec('jira-issues.json', REPO_SPECS_DIR, { annotations: ['xml'] });
const adf = adfValidator();

const base = { github: { name: 't', type: 'github', repository: 'acme/shop', tokenEnv: 'GH_TOKEN' }, gitlab: { name: 't', type: 'gitlab', project: 'acme/shop', tokenEnv: 'GL_TOKEN' }, jira: { name: 't', type: 'jira', url: 'https://acme.atlassian.net', email: 'dw@acme.example', project: 'SEC', tokenEnv: 'JIRA_TOKEN' } };

const bad: [string, Record<string, unknown>, string, RegExp?][] = [
  ['github without a repository', { ...base.github, repository: undefined }, 'sinks.0.repository'],
  ['github repository not OWNER/REPO', { ...base.github, repository: 'shop' }, 'sinks.0.repository', /OWNER\/REPO/],
  ['no token source', { ...base.github, tokenEnv: undefined }, 'sinks.0.tokenFile', /never in the config file/],
  ['two token sources', { ...base.gitlab, tokenFile: '/run/token' }, 'sinks.0.tokenEnv', /not both/],
  ['a token in the config file', { ...base.github, token: 'ghp_secret' }, 'sinks.0.token', /unknown setting/],
  ['a label with a space', { ...base.gitlab, labels: ['runtime drift'] }, 'sinks.0.labels.0', /spaces or commas/],
  ['a severity label without {severity}', { ...base.github, severityLabel: 'sev' }, 'sinks.0.severityLabel', /\{severity\}/],
  ['a GitLab assignee that is no user id', { ...base.gitlab, assignees: { storefront: 'octocat' } }, 'sinks.0.assignees.storefront'],
  ['a Jira project that is no key', { ...base.jira, project: 'security' }, 'sinks.0.project', /project key/],
  ['Jira without the account email', { ...base.jira, email: undefined }, 'sinks.0.email'],
  ['Jira without its site', { ...base.jira, url: undefined }, 'sinks.0.url'],
  ['github repository ../.. (the path would climb to another API path)', { ...base.github, repository: '../..' }, 'sinks.0.repository', /neither of them \. or \.\./],
  ['github repository owner ..', { ...base.github, repository: '../shop' }, 'sinks.0.repository', /neither of them \. or \.\./],
  ['github repository .', { ...base.github, repository: 'acme/.' }, 'sinks.0.repository', /neither of them \. or \.\./],
  ['maxNewTicketsPerHour of 0', { ...base.gitlab, maxNewTicketsPerHour: 0 }, 'sinks.0.maxNewTicketsPerHour'],
  ['maxNewTicketsPerHour not a whole number', { ...base.jira, maxNewTicketsPerHour: 2.5 }, 'sinks.0.maxNewTicketsPerHour'],
];
for (const [what, sink, field, message] of bad) {
  test(`config error names the field: ${what}`, (t) => {
    const err = t.throws(() => parseSinksConfig({ sinks: [sink] }), { instanceOf: ConfigError });
    t.is(err?.key, field);
    if (message) t.regex(err!.message, message);
    t.false(err!.message.includes('ghp_secret'));
  });
}

test('a token file or variable that is missing or empty stops startup naming the sink\'s key, not the value', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dw-token-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tickets = {} as never;
  const missing = t.throws(() => createSinks(parseSinksConfig({ sinks: [{ ...base.github, tokenEnv: undefined, tokenFile: join(dir, 'nope') }] }), { tickets }), { instanceOf: ConfigError });
  t.is(missing?.key, 'sinks.0.tokenFile');
  t.regex(missing!.message, /ENOENT/);
  writeFileSync(join(dir, 'empty'), '\n');
  t.is(t.throws(() => createSinks(parseSinksConfig({ sinks: [{ ...base.jira, tokenEnv: undefined, tokenFile: join(dir, 'empty') }] }), { tickets }), { instanceOf: ConfigError })?.key, 'sinks.0.tokenFile');
  delete process.env.DW_TEST_UNSET_TOKEN;
  t.is(t.throws(() => createSinks(parseSinksConfig({ sinks: [{ ...base.gitlab, tokenEnv: 'DW_TEST_UNSET_TOKEN' }] }), { tickets }), { instanceOf: ConfigError })?.key, 'sinks.0.tokenEnv');
});

const opening = (overrides: Partial<TicketOpening> = {}): TicketOpening => {
  const alert = shellNotification();
  return { title: ticketTitle(alert.image), alert, labels: ticketLabels({ labels: ['driftwatch'], severityLabel: 'severity:{severity}' }, alert.severity), assignee: undefined, replaces: '', ...overrides };
};

test('GitHub payloads are what GitHub\'s description asks for: issues/create, issues/create-comment, issues/update', (t) => {
  const create = buildGitHubIssue(opening({ assignee: 'octocat' }));
  t.deepEqual(github.validate(requestSchema(github, '/repos/{owner}/{repo}/issues', 'post'), create), []);
  t.like(create, { title: 'Driftwatch: runtime drift in docker.io/library/nginx', labels: ['driftwatch', 'severity:critical'], assignees: ['octocat'] });
  const comment = buildGitHubComment({ kind: 'alert', alert: shellNotification() });
  t.deepEqual(github.validate(requestSchema(github, '/repos/{owner}/{repo}/issues/{issue_number}/comments', 'post'), comment), []);
  for (const to of ['closed', 'open'] as const) t.deepEqual(github.validate(requestSchema(github, '/repos/{owner}/{repo}/issues/{issue_number}', 'patch'), buildGitHubState(to)), []);
  // The schema does refuse what GitHub refuses: the test can fail.
  t.notDeepEqual(github.validate(requestSchema(github, '/repos/{owner}/{repo}/issues/{issue_number}', 'patch'), { state: 'resolved' }), []);
  t.notDeepEqual(github.validate(requestSchema(github, '/repos/{owner}/{repo}/issues', 'post'), { body: 'no title' }), []);
});

test('Jira payloads are what Atlassian\'s description asks for, and their documents are valid ADF', (t) => {
  const create = buildJiraIssue(opening({ assignee: '5b10a2844c20165700ede21g' }), { project: 'SEC', issueType: 'Task' });
  t.deepEqual(jira.validate(requestSchema(jira, '/rest/api/3/issue', 'post'), create), []);
  t.deepEqual(adf(create.fields.description), []);
  t.like(create.fields, { project: { key: 'SEC' }, issuetype: { name: 'Task' }, labels: ['driftwatch', 'severity:critical'], assignee: { accountId: '5b10a2844c20165700ede21g' } });
  const comment = buildJiraComment({ kind: 'closing', alert: shellNotification({ action: 'resolve', actor: 'alice', comment: 'patched' }) });
  t.deepEqual(jira.validate(requestSchema(jira, '/rest/api/3/issue/{issueIdOrKey}/comment', 'post'), comment), []);
  t.deepEqual(adf(comment.body), []);
  t.deepEqual(jira.validate(requestSchema(jira, '/rest/api/3/issue/{issueIdOrKey}/transitions', 'post'), buildJiraTransition('31')), []);
  t.notDeepEqual(adf({ type: 'doc', version: 1, content: [{ type: 'paragraph', content: [{ type: 'text', text: '' }] }] }), [], 'ADF refuses an empty text node');
});

test('a Jira transition is found by its name or by its target status, case-insensitively', (t) => {
  const answer = { transitions: [{ id: '2', name: 'Close Issue', to: { name: 'Closed' } }, { id: '5', name: 'Back to work', to: { name: 'To Do' } }] };
  t.is(transitionId(answer, 'close issue'), '2');
  t.is(transitionId(answer, 'Closed'), '2');
  t.is(transitionId(answer, 'To Do'), '5');
  t.is(transitionId(answer, 'Done'), null);
});

test('GitLab payloads: labels as one comma-separated string, assignee_ids as numbers', (t) => {
  t.like(buildGitLabIssue(opening({ assignee: 42 })), { title: 'Driftwatch: runtime drift in docker.io/library/nginx', labels: 'driftwatch,severity:critical', assignee_ids: [42] });
});

test('text an attacker shapes stays inside one code fence: no mention, link, image or HTML reaches the tracker\'s renderer', (t) => {
  const hostile = '/bin/sh -c ```\n@security-team [click](https://evil.example) ![x](https://evil.example/p.png) <img src=x onerror=alert(1)> #1 ````';
  const n = shellNotification({}, { example: hostile, explanation: `\u202e${hostile}`, pods: ['shop/@oncall'] });
  const md = markdownOf('A new alert for this image:', n, n.url);
  const fence = /^(`{5,})text$/m.exec(md)?.[1];
  t.truthy(fence, 'a fence longer than the longest backtick run (4) in the text');
  const [before, inside, after] = md.split(new RegExp(`^${fence}(?:text)?$`, 'm'));
  t.is(before!.trim(), 'A new alert for this image:');
  t.true(inside!.includes('@security-team') && inside!.includes('<img'), 'the hostile text is there, as text');
  t.true(inside!.includes('\\u202e'), 'a bidi override is shown as an escape');
  t.false(after!.includes('@') || after!.includes('evil'), `nothing hostile after the fence: ${after}`);
  const body = buildJiraComment({ kind: 'alert', alert: n }).body;
  t.deepEqual(adf(body), []);
  const marks = JSON.stringify(body.content.filter((c) => c.type === 'paragraph'));
  t.false(marks.includes('evil'), 'in Jira, the only link is the alert\'s own');
});

test('postgres, two replicas: two alerts of one image delivered at once open one ticket; the replica refused the claim comments on it when retried', async (t) => {
  const url = await postgres.database();
  const one = await openPostgresStore(url);
  const two = await openPostgresStore(url);
  t.teardown(() => Promise.all([one.close(), two.close()]));
  const tracker = await startTracker(t, 'github');
  process.env.DW_TEST_RACE_TOKEN = 'race-token';
  const config = parseSinksConfig({ sinks: [{ ...base.github, url: tracker.url, tokenEnv: 'DW_TEST_RACE_TOKEN' }] });
  const [a] = createSinks(config, { tickets: one, owner: 'replica-one' });
  const [b] = createSinks(config, { tickets: two, owner: 'replica-two' });
  const signal = new AbortController().signal;
  const first = shellNotification({}, { image: 'docker.io/acme/race', baselineKey: 'docker.io/acme/race', fingerprint: 'a'.repeat(32) });
  const second = shellNotification({}, { image: 'docker.io/acme/race', baselineKey: 'docker.io/acme/race', fingerprint: 'b'.repeat(32) });
  const results = await Promise.allSettled([a!.send(first, signal), b!.send(second, signal)]);
  const refused = results.filter((r) => r.status === 'rejected');
  // Either both ran one after the other, or one was refused the claim (retryable, as the outbox would retry it).
  for (const r of refused) t.true((r as PromiseRejectedResult).reason instanceof DeliveryError && ((r as PromiseRejectedResult).reason as DeliveryError).retryable);
  if (refused.length > 0) await (results[0]!.status === 'rejected' ? a!.send(first, signal) : b!.send(second, signal));
  t.is(tracker.issues.size, 1, 'one ticket for the image');
  t.is([...tracker.issues.values()][0]!.comments.length, 1, 'the other alert is a comment on it');
  t.like(await one.getImageTicket('t', 'docker.io/acme/race'), { state: 'open', openAlerts: 2, opened: 1 });
  t.log(refused.length === 0 ? 'the two sends did not overlap this time' : 'one replica was refused the claim and retried');
  t.deepEqual(tracker.violations, []);
});

test('a repository named to mention people or reference things opens tickets whose title does neither, in all three trackers', (t) => {
  const hostile = 'x @security-leads @all #1 !2 ~urgent %v1 &3 [click](https://evil.example) `code` <b>';
  const o = opening({ title: ticketTitle(hostile) });
  const titles = { github: buildGitHubIssue(o).title, gitlab: buildGitLabIssue(o).title, jira: buildJiraIssue(o, { project: 'SEC', issueType: 'Task' }).fields.summary };
  for (const [tracker, title] of Object.entries(titles)) {
    t.false(/[@#!~%&[\]`<>]/.test(title), `${tracker}: ${title}`);
    t.true(title.startsWith('Driftwatch: runtime drift in x \uff20security-leads \uff20all \uff031 \uff012 \u223curgent'), `${tracker}: a person still reads it: ${title}`);
  }
  t.is(ticketTitle('docker.io/library/nginx'), 'Driftwatch: runtime drift in docker.io/library/nginx', 'an ordinary repository is unchanged');
  t.is(ticketTitle('x\u202e@all'), 'Driftwatch: runtime drift in x\\u202e\uff20all', 'invisible characters still shown as escapes');
});

test('a replaced ticket is named by its URL only when that is a plain https address; else by its id', (t) => {
  t.is(displayRef({ url: 'https://github.com/acme/shop/issues/12', ref: '12' }), 'https://github.com/acme/shop/issues/12');
  t.is(displayRef({ url: 'https://acme.atlassian.net/browse/SEC-4', ref: 'SEC-4' }), 'https://acme.atlassian.net/browse/SEC-4');
  for (const url of ['https://evil.example/x @all', 'https://x.example/[click](https://evil.example)', 'http://gitlab.example/a/b/-/issues/3', 'javascript:alert(1)', 'https://x.example/<img src=x>', 'https://x.example/a\n@all', '', `https://x.example/${'a'.repeat(2048)}`]) {
    t.is(displayRef({ url, ref: '12' }), '12', JSON.stringify(url.slice(0, 60)));
  }
  const lead = commentLead({ kind: 'open', replaces: displayRef({ url: 'https://evil.example/ @security-leads', ref: '7' }), alert: shellNotification() });
  t.regex(lead, /This ticket replaces 7, which was deleted/);
  t.false(lead.includes('@'));
});

test('the new-ticket budget: max openings in any hour, the held ones reported at the first hold and then at most hourly', (t) => {
  let now = 1_000_000;
  const b = newTicketBudget(2, () => now);
  t.true(b.allows());
  b.spend();
  now += 1000;
  b.spend();
  t.false(b.allows(), 'two opened within the hour');
  t.is(b.hold(), 1, 'the first hold is reported at once');
  t.is(b.hold(), 0);
  t.is(b.hold(), 0);
  now += 3_600_000 - 1000;
  t.true(b.allows(), 'an hour after the first opening, room for one');
  b.spend();
  t.false(b.allows());
  now += 1000;
  t.is(b.hold(), 3, 'an hour later: the two held since, and this one');
});
