/**
 * A local issue tracker for ticket-sink tests: one HTTP server (test/helpers/recorder.ts) that plays
 * GitHub Issues, GitLab Issues or Jira Cloud. It keeps the issues it was asked to open, their
 * comments and their state; answers with the publisher's own example objects (from the extracts in
 * fixtures/specs) with the issue's number, key or state filled in; checks every request body it
 * receives, and every answer it gives, against the publisher's schema with ajv (violations are kept
 * for the test to assert empty); and lets a test inject answers (429 with Retry-After, 500) or delete
 * an issue (then GitHub answers 410, GitLab and Jira 404).
 */
import type { ExecutionContext } from 'ava';
import { loadSpec, REPO_SPECS_DIR, type Spec } from './openapi.js';
import { startRecorder, type Received, type Reply } from './recorder.js';
import { Ajv } from 'ajv';
import { readFileSync } from 'node:fs';

/** The tracker kinds. */
export type TrackerKind = 'github' | 'gitlab' | 'jira';

/** One issue as the tracker holds it. */
export interface TrackedIssue {
  ref: string;
  title: string;
  /** The body (GitHub), description (GitLab) or ADF description (Jira, as JSON text). */
  body: string;
  labels: string[];
  assignee: string | number | null;
  state: 'open' | 'closed';
  comments: string[];
  deleted: boolean;
}

/** A running tracker. */
export interface Tracker {
  url: string;
  kind: TrackerKind;
  received: Received[];
  issues: Map<string, TrackedIssue>;
  /** Schema violations of requests received and answers given (empty when all is as the publisher says). */
  violations: string[];
  /** Answer the next request(s) with these replies instead (e.g. a 429), in order. */
  inject(...replies: Reply[]): void;
  /** Delete an issue, as a person would in the tracker. */
  remove(ref: string): void;
  /** Requests that changed something (not GETs), as `METHOD path`. */
  calls(): string[];
}

const GITHUB = () => loadSpec('github-issues.json', REPO_SPECS_DIR, { annotations: ['x-github-breaking-changes'] });
const JIRA = () => loadSpec('jira-issues.json', REPO_SPECS_DIR, { annotations: ['xml'] });

/** Atlassian's own JSON schema of ADF documents (fixtures/specs/README.md), draft-04 tuples allowed. */
export function adfValidator(): (doc: unknown) => string[] {
  const { $schema: _, ...schema } = JSON.parse(readFileSync(`${REPO_SPECS_DIR}/adf-full.json`, 'utf8')) as Record<string, unknown>;
  const ajv = new Ajv({ strict: true, strictTuples: false, allErrors: true, validateSchema: false });
  const check = ajv.compile(schema);
  return (doc) => (check(doc) ? [] : (check.errors ?? []).slice(0, 5).map((e) => `${e.instancePath}: ${e.message ?? e.keyword}`));
}

/** The request body schema of `method path` in `spec`. */
export function requestSchema(spec: Spec, path: string, method: string): unknown {
  const op = (spec.doc.paths as Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>>)[path]![method]!;
  return op.requestBody!.content['application/json']!.schema;
}

/** The response schema of `method path` for `status` in `spec`. */
export function responseSchema(spec: Spec, path: string, method: string, status: string): unknown {
  const op = (spec.doc.paths as Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }>; $ref?: string }> }>>)[path]![method]!;
  let r = op.responses[status]!;
  if (r.$ref) r = spec.at(r.$ref) as typeof r;
  return r.content!['application/json']!.schema;
}

/** The example answer of `method path` for `status` (Jira's are JSON text). */
function jiraExample(spec: Spec, path: string, method: string, status: string): Record<string, unknown> {
  const op = (spec.doc.paths as Record<string, Record<string, { responses: Record<string, { content: Record<string, { example: unknown }> }> }>>)[path]![method]!;
  const ex = op.responses[status]!.content['application/json']!.example;
  return (typeof ex === 'string' ? JSON.parse(ex) : ex) as Record<string, unknown>;
}

/** Start a tracker of `kind` on loopback; closed when the test ends. */
export async function startTracker(t: ExecutionContext, kind: TrackerKind): Promise<Tracker> {
  const issues = new Map<string, TrackedIssue>();
  const violations: string[] = [];
  const injected: Reply[] = [];
  let next = kind === 'jira' ? 10 : 1;
  const spec = kind === 'github' ? GITHUB() : kind === 'jira' ? JIRA() : null;
  const adf = kind === 'jira' ? adfValidator() : null;
  let base = '';

  const check = (what: string, schema: unknown, value: unknown) => {
    if (!spec) return;
    for (const v of spec.validate(schema, value)) violations.push(`${what}: ${v}`);
  };
  const json = (status: number, body: unknown): Reply => ({ status, body: body === undefined ? '' : JSON.stringify(body) });

  const github = (req: Received, body: Record<string, unknown>): Reply => {
    const s = spec!;
    const m = /^\/repos\/([^/]+)\/([^/]+)\/issues(?:\/(\d+)(\/comments)?)?$/.exec(req.path);
    if (!m) return json(404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
    const [, owner, repo, number, comments] = m;
    const issueOf = (i: TrackedIssue) => {
      const ex = s.at('#/components/examples/issue') as { value: Record<string, unknown> };
      const answer = { ...ex.value, number: Number(i.ref), title: i.title, body: i.body, state: i.state, html_url: `https://github.example/${owner}/${repo}/issues/${i.ref}`, url: `${base}/repos/${owner}/${repo}/issues/${i.ref}` };
      return answer;
    };
    if (req.method === 'POST' && number === undefined) {
      check('issues/create request', requestSchema(s, '/repos/{owner}/{repo}/issues', 'post'), body);
      const ref = String(next++);
      const labels = (body.labels as string[] | undefined) ?? [];
      issues.set(ref, { ref, title: String(body.title), body: String(body.body ?? ''), labels, assignee: (body.assignees as string[] | undefined)?.[0] ?? null, state: 'open', comments: [], deleted: false });
      const answer = issueOf(issues.get(ref)!);
      check('issues/create answer', responseSchema(s, '/repos/{owner}/{repo}/issues', 'post', '201'), answer);
      return json(201, answer);
    }
    const issue = issues.get(number ?? '');
    if (!issue) return json(404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
    if (issue.deleted) return json(410, { message: 'This issue was deleted', documentation_url: 'https://docs.github.com/rest' });
    if (req.method === 'POST' && comments) {
      check('issues/create-comment request', requestSchema(s, '/repos/{owner}/{repo}/issues/{issue_number}/comments', 'post'), body);
      issue.comments.push(String(body.body));
      const ex = s.at('#/components/examples/issue-comment') as { value: Record<string, unknown> };
      const answer = { ...ex.value, body: String(body.body) };
      check('issues/create-comment answer', responseSchema(s, '/repos/{owner}/{repo}/issues/{issue_number}/comments', 'post', '201'), answer);
      return json(201, answer);
    }
    if (req.method === 'PATCH') {
      check('issues/update request', requestSchema(s, '/repos/{owner}/{repo}/issues/{issue_number}', 'patch'), body);
      if (body.state === 'open' || body.state === 'closed') issue.state = body.state;
      const answer = issueOf(issue);
      check('issues/update answer', responseSchema(s, '/repos/{owner}/{repo}/issues/{issue_number}', 'patch', '200'), answer);
      return json(200, answer);
    }
    return json(404, { message: 'Not Found' });
  };

  // GitLab: shapes from GitLab's REST documentation (doc/api/issues.md, doc/api/notes.md); see fixtures/specs/README.md.
  const gitlab = (req: Received, body: Record<string, unknown>): Reply => {
    const m = /^\/projects\/([^/]+)\/issues(?:\/(\d+)(\/notes)?)?$/.exec(req.path);
    if (!m) return json(404, { message: '404 Not found' });
    const [, project, iid, notes] = m;
    const issueOf = (i: TrackedIssue) => ({ id: 1000 + Number(i.ref), iid: Number(i.ref), project_id: 3, title: i.title, description: i.body, state: i.state === 'open' ? 'opened' : 'closed', labels: i.labels, web_url: `https://gitlab.example/${decodeURIComponent(project!)}/-/issues/${i.ref}` });
    if (req.method === 'POST' && iid === undefined) {
      if (typeof body.title !== 'string' || body.title === '') violations.push('POST issues: title is required');
      if (body.labels !== undefined && typeof body.labels !== 'string') violations.push('POST issues: labels must be a comma-separated string');
      const ref = String(next++);
      issues.set(ref, { ref, title: String(body.title), body: String(body.description ?? ''), labels: String(body.labels ?? '').split(',').filter(Boolean), assignee: (body.assignee_ids as number[] | undefined)?.[0] ?? null, state: 'open', comments: [], deleted: false });
      return json(201, issueOf(issues.get(ref)!));
    }
    const issue = issues.get(iid ?? '');
    if (!issue || issue.deleted) return json(404, { message: '404 Issue Not Found' });
    if (req.method === 'POST' && notes) {
      if (typeof body.body !== 'string' || body.body === '') violations.push('POST notes: body is required');
      issue.comments.push(String(body.body));
      return json(201, { id: 300 + issue.comments.length, body: body.body, noteable_iid: Number(issue.ref), system: false });
    }
    if (req.method === 'PUT') {
      if (body.state_event !== 'close' && body.state_event !== 'reopen') violations.push(`PUT issue: state_event must be close or reopen, not ${String(body.state_event)}`);
      issue.state = body.state_event === 'close' ? 'closed' : 'open';
      return json(200, issueOf(issue));
    }
    return json(404, { message: '404 Not found' });
  };

  const jira = (req: Received, body: Record<string, unknown>): Reply => {
    const s = spec!;
    if (req.method === 'POST' && req.path === '/rest/api/3/issue') {
      check('createIssue request', requestSchema(s, '/rest/api/3/issue', 'post'), body);
      const fields = body.fields as Record<string, unknown>;
      for (const v of adf!(fields.description)) violations.push(`createIssue description (ADF): ${v}`);
      const ref = `SEC-${next++}`;
      issues.set(ref, { ref, title: String(fields.summary), body: JSON.stringify(fields.description), labels: (fields.labels as string[]) ?? [], assignee: (fields.assignee as { accountId?: string } | undefined)?.accountId ?? null, state: 'open', comments: [], deleted: false });
      // The example's `transition` is there only when the request asked for one.
      const { transition: _, ...example } = jiraExample(s, '/rest/api/3/issue', 'post', '201');
      const answer = { ...example, key: ref, id: String(10000 + next), self: `${base}/rest/api/3/issue/${ref}` };
      check('createIssue answer', responseSchema(s, '/rest/api/3/issue', 'post', '201'), answer);
      return json(201, answer);
    }
    const m = /^\/rest\/api\/3\/issue\/([^/]+)\/(comment|transitions)$/.exec(req.path);
    if (!m) return json(404, { errorMessages: ['Not found'], errors: {} });
    const [, key, what] = m;
    const issue = issues.get(decodeURIComponent(key!));
    if (!issue || issue.deleted) return json(404, { errorMessages: ['Issue does not exist or you do not have permission to see it.'], errors: {} });
    if (what === 'comment' && req.method === 'POST') {
      check('addComment request', requestSchema(s, '/rest/api/3/issue/{issueIdOrKey}/comment', 'post'), body);
      for (const v of adf!(body.body)) violations.push(`addComment body (ADF): ${v}`);
      issue.comments.push(JSON.stringify(body.body));
      const answer = { ...jiraExample(s, '/rest/api/3/issue/{issueIdOrKey}/comment', 'post', '201'), body: body.body };
      check('addComment answer', responseSchema(s, '/rest/api/3/issue/{issueIdOrKey}/comment', 'post', '201'), answer);
      return json(201, answer);
    }
    if (what === 'transitions' && req.method === 'GET') {
      // The workflow of a Jira Cloud team-managed project: transitions named after their target status.
      const example = jiraExample(s, '/rest/api/3/issue/{issueIdOrKey}/transitions', 'get', '200') as { transitions: Record<string, unknown>[] };
      const like = example.transitions[0]!;
      const to = like.to as Record<string, unknown>;
      const answer = {
        transitions: [
          { ...like, id: '11', name: 'To Do', to: { ...to, name: 'To Do', id: '10000' } },
          { ...like, id: '21', name: 'In Progress', to: { ...to, name: 'In Progress', id: '10001' } },
          { ...like, id: '31', name: 'Done', to: { ...to, name: 'Done', id: '10002' } },
        ],
      };
      check('getTransitions answer', responseSchema(s, '/rest/api/3/issue/{issueIdOrKey}/transitions', 'get', '200'), answer);
      return json(200, answer);
    }
    if (what === 'transitions' && req.method === 'POST') {
      check('doTransition request', requestSchema(s, '/rest/api/3/issue/{issueIdOrKey}/transitions', 'post'), body);
      const id = (body.transition as { id?: string } | undefined)?.id;
      if (id === '31') issue.state = 'closed';
      else if (id === '11') issue.state = 'open';
      else violations.push(`doTransition: unknown transition ${String(id)}`);
      return { status: 204 };
    }
    return json(405, { errorMessages: ['Method not allowed'], errors: {} });
  };

  const rec = await startRecorder(t, (req) => {
    const injectedReply = injected.shift();
    if (injectedReply) return injectedReply;
    let body: Record<string, unknown> = {};
    if (req.body !== '') {
      try {
        body = JSON.parse(req.body) as Record<string, unknown>;
      } catch {
        violations.push(`${req.method} ${req.path}: the body is not JSON`);
        return json(400, { message: 'Problems parsing JSON' });
      }
    }
    return kind === 'github' ? github(req, body) : kind === 'gitlab' ? gitlab(req, body) : jira(req, body);
  });
  base = rec.url;
  return {
    url: rec.url,
    kind,
    received: rec.received,
    issues,
    violations,
    inject: (...replies) => void injected.push(...replies),
    remove(ref) {
      const i = issues.get(ref);
      if (i) i.deleted = true;
    },
    calls: () => rec.received.filter((r) => r.method !== 'GET').map((r) => `${r.method} ${r.path}`),
  };
}
