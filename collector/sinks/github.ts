/**
 * GitHub Issues (github.com or GitHub Enterprise Server): one issue per image repository
 * (./tickets.ts), through the REST API.
 *
 * What this follows, from GitHub's own description (github/rest-api-description, extracted into
 * fixtures/specs/github-issues.json by scripts/extract-openapi.mjs):
 * - `POST /repos/{owner}/{repo}/issues` (`issues/create`): `title` required, `body`, `labels`
 *   (strings), `assignees` (logins); 201 with an `issue` (`number`, `html_url`);
 * - `POST /repos/{owner}/{repo}/issues/{issue_number}/comments` (`issues/create-comment`): `body`
 *   required; 201;
 * - `PATCH /repos/{owner}/{repo}/issues/{issue_number}` (`issues/update`): `state` open | closed and
 *   `state_reason` completed | not_planned | duplicate | reopened; 200; 410 for a deleted issue.
 * From GitHub's REST documentation ("Rate limits for the REST API"): a spent primary limit answers
 * 403 or 429 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` (Unix seconds); a secondary
 * limit 403 or 429 with `retry-after`: ./http.ts waits for either. Headers: `Accept:
 * application/vnd.github+json`, `Authorization: Bearer <token>`, `X-GitHub-Api-Version: 2022-11-28`.
 */
import { z } from 'zod';
import { httpUrl } from './http.js';
import { sinkName, type Sink } from './sink.js';
import {
  answerOf,
  assigneeMap,
  commentLead,
  createTicketSink,
  markdownOf,
  ticketHttp,
  ticketShape,
  tokenReader,
  tokenSourceIssue,
  type TicketComment,
  type TicketDeps,
  type TicketOpening,
  type TicketTracker,
} from './tickets.js';

/** The REST API of github.com; GitHub Enterprise Server's is `https://HOST/api/v3`. */
export const GITHUB_API_URL = 'https://api.github.com';

/** The REST API version this sink speaks. */
export const GITHUB_API_VERSION = '2022-11-28';

/** Config of one GitHub Issues sink. */
export const GitHubConfigSchema = z
  .strictObject({
    type: z.literal('github'),
    name: sinkName,
    /** API base: `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server. */
    url: httpUrl.default(GITHUB_API_URL),
    /** `owner/repo` where the issues are opened. */
    repository: z.string().regex(/^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/, 'must be OWNER/REPO'),
    /** Owner team (from alerting.owners) → GitHub login the issue is assigned to. */
    assignees: assigneeMap(z.string().regex(/^[A-Za-z0-9-]{1,39}$/, 'must be a GitHub login')),
    ...ticketShape,
  })
  .superRefine((c, ctx) => {
    const issue = tokenSourceIssue(c);
    if (issue) ctx.addIssue({ code: 'custom', ...issue });
    // `.` or `..` as a path segment: the request URL would normalise to another API path, sent the token.
    if (c.repository.split('/').some((part) => part === '.' || part === '..')) ctx.addIssue({ code: 'custom', path: ['repository'], message: 'must be OWNER/REPO, neither of them . or ..' });
  });

/** A parsed GitHub config. */
export type GitHubConfig = z.output<typeof GitHubConfigSchema>;

/** The body of `issues/create`. Pure. */
export function buildGitHubIssue(t: TicketOpening) {
  return {
    title: t.title,
    body: markdownOf(commentLead({ kind: 'open', replaces: t.replaces, alert: t.alert }), t.alert, t.alert.url),
    labels: t.labels,
    ...(typeof t.assignee === 'string' ? { assignees: [t.assignee] } : {}),
  };
}

/** The body of `issues/create-comment`. Pure. */
export function buildGitHubComment(c: TicketComment) {
  return { body: markdownOf(commentLead(c), c.alert, c.alert.url) };
}

/** The body of `issues/update` that closes or reopens. Pure. */
export function buildGitHubState(to: 'closed' | 'open') {
  return to === 'closed' ? { state: 'closed', state_reason: 'completed' } : { state: 'open', state_reason: 'reopened' };
}

const IssueAnswer = z.object({ number: z.number().int().positive(), html_url: z.string().max(2048) });

/** Create a GitHub Issues sink (reads its token: a missing one stops startup). */
export function createGitHubSink(config: GitHubConfig, deps: TicketDeps = {}): Sink {
  const token = tokenReader(config);
  const call = ticketHttp(config.url, config, token, (secret) => ({ accept: 'application/vnd.github+json', authorization: `Bearer ${secret}`, 'x-github-api-version': GITHUB_API_VERSION }), deps);
  const issues = `/repos/${config.repository}/issues`;
  const tracker: TicketTracker = {
    async open(t, signal) {
      const issue = answerOf(IssueAnswer, await call('POST', issues, buildGitHubIssue(t), signal), 'issues/create');
      return { ref: String(issue.number), url: issue.html_url };
    },
    async comment(ref, c, signal) {
      await call('POST', `${issues}/${encodeURIComponent(ref)}/comments`, buildGitHubComment(c), signal);
    },
    async close(ref, signal) {
      await call('PATCH', `${issues}/${encodeURIComponent(ref)}`, buildGitHubState('closed'), signal);
    },
    async reopen(ref, signal) {
      await call('PATCH', `${issues}/${encodeURIComponent(ref)}`, buildGitHubState('open'), signal);
    },
  };
  return createTicketSink('github', config, tracker, deps);
}

/** The GitHub sink type, for the registry in ./index.ts. */
export const gitHubSinkType = { type: 'github', schema: GitHubConfigSchema, create: createGitHubSink } as const;
