/**
 * GitLab Issues (gitlab.com or self-managed): one issue per image repository (./tickets.ts), through
 * the REST API v4.
 *
 * What this follows (fixtures/specs/README.md says from which description):
 * - `POST /projects/:id/issues`: `title` required, `description`, `labels` (one comma-separated
 *   string), `assignee_ids` (user ids); 201 with the issue (`iid`, `web_url`);
 * - `POST /projects/:id/issues/:issue_iid/notes`: `body` required; 201;
 * - `PUT /projects/:id/issues/:issue_iid`: `state_event` close | reopen; 200; 404 once deleted.
 * `:id` is the project's number or its URL-encoded path (`group%2Fproject`). The token goes in the
 * `PRIVATE-TOKEN` header (a personal, group or project access token with the `api` scope).
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

/** The REST API of gitlab.com; a self-managed instance's is `https://HOST/api/v4`. */
export const GITLAB_API_URL = 'https://gitlab.com/api/v4';

/** Config of one GitLab Issues sink. */
export const GitLabConfigSchema = z
  .strictObject({
    type: z.literal('gitlab'),
    name: sinkName,
    /** API base: `https://gitlab.com/api/v4`, or `https://HOST/api/v4` for a self-managed GitLab. */
    url: httpUrl.default(GITLAB_API_URL),
    /** The project: its number, or its path (`group/subgroup/project`). */
    project: z.union([
      z.number().int().positive(),
      z.string().regex(/^([0-9]{1,12}|[A-Za-z0-9_.-]{1,255}(\/[A-Za-z0-9_.-]{1,255}){1,20})$/, 'must be a project id or a path such as group/project'),
    ]),
    /** Owner team (from alerting.owners) → GitLab user id the issue is assigned to. */
    assignees: assigneeMap(z.number().int().positive()),
    ...ticketShape,
  })
  .superRefine((c, ctx) => {
    const issue = tokenSourceIssue(c);
    if (issue) ctx.addIssue({ code: 'custom', ...issue });
  });

/** A parsed GitLab config. */
export type GitLabConfig = z.output<typeof GitLabConfigSchema>;

/** The body of `POST /projects/:id/issues`. Pure. */
export function buildGitLabIssue(t: TicketOpening) {
  return {
    title: t.title,
    description: markdownOf(commentLead({ kind: 'open', replaces: t.replaces, alert: t.alert }), t.alert, t.alert.url),
    labels: t.labels.join(','),
    ...(typeof t.assignee === 'number' ? { assignee_ids: [t.assignee] } : {}),
  };
}

/** The body of `POST /projects/:id/issues/:issue_iid/notes`. Pure. */
export function buildGitLabNote(c: TicketComment) {
  return { body: markdownOf(commentLead(c), c.alert, c.alert.url) };
}

/** The body of `PUT /projects/:id/issues/:issue_iid` that closes or reopens. Pure. */
export function buildGitLabState(to: 'close' | 'reopen') {
  return { state_event: to };
}

const IssueAnswer = z.object({ iid: z.number().int().positive(), web_url: z.string().max(2048) });

/** Create a GitLab Issues sink (reads its token: a missing one stops startup). */
export function createGitLabSink(config: GitLabConfig, deps: TicketDeps = {}): Sink {
  const token = tokenReader(config);
  const call = ticketHttp(config.url, config, token, (secret) => ({ 'private-token': secret }), deps);
  const issues = `/projects/${encodeURIComponent(String(config.project))}/issues`;
  const tracker: TicketTracker = {
    async open(t, signal) {
      const issue = answerOf(IssueAnswer, await call('POST', issues, buildGitLabIssue(t), signal), 'POST /projects/:id/issues');
      return { ref: String(issue.iid), url: issue.web_url };
    },
    async comment(ref, c, signal) {
      await call('POST', `${issues}/${encodeURIComponent(ref)}/notes`, buildGitLabNote(c), signal);
    },
    async close(ref, signal) {
      await call('PUT', `${issues}/${encodeURIComponent(ref)}`, buildGitLabState('close'), signal);
    },
    async reopen(ref, signal) {
      await call('PUT', `${issues}/${encodeURIComponent(ref)}`, buildGitLabState('reopen'), signal);
    },
  };
  return createTicketSink('gitlab', config, tracker, deps);
}

/** The GitLab sink type, for the registry in ./index.ts. */
export const gitLabSinkType = { type: 'gitlab', schema: GitLabConfigSchema, create: createGitLabSink } as const;
