/**
 * Jira Cloud: one issue per image repository (./tickets.ts), through the platform REST API v3.
 *
 * What this follows, from Atlassian's description of the Jira Cloud platform REST API
 * (swagger-v3.v3.json, extracted into fixtures/specs/jira-issues.json by scripts/extract-openapi.mjs):
 * - `POST /rest/api/3/issue` (`createIssue`, body `IssueUpdateDetails`): `fields` with `project`
 *   {key}, `summary`, `issuetype` {name}, `description` (an Atlassian Document Format document),
 *   `labels`, `assignee` {accountId}; 201 with `CreatedIssue` (`id`, `key`, `self`);
 * - `POST /rest/api/3/issue/{issueIdOrKey}/comment` (`addComment`, body `Comment`): `body` in ADF; 201;
 * - `GET /rest/api/3/issue/{issueIdOrKey}/transitions` (`getTransitions`): `Transitions` with each
 *   transition's `id`, `name` and target status `to.name`;
 *   `POST /rest/api/3/issue/{issueIdOrKey}/transitions` (`doTransition`): {transition: {id}}; 204.
 * Closing and reopening are workflow transitions, found by name (or target status name), as
 * configured. Auth: basic, the account's email and an API token. Jira answers 429 with Retry-After.
 */
import { z } from 'zod';
import { DeliveryError, httpUrl } from './http.js';
import { sinkName, type Notification, type Sink } from './sink.js';
import {
  alertFacts,
  answerOf,
  assigneeMap,
  commentLead,
  createTicketSink,
  ticketHttp,
  ticketShape,
  tokenReader,
  tokenSourceIssue,
  type TicketComment,
  type TicketDeps,
  type TicketOpening,
  type TicketTracker,
} from './tickets.js';

const transitionName = z.string().min(1).max(100);

/** Config of one Jira Cloud sink. */
export const JiraConfigSchema = z
  .strictObject({
    type: z.literal('jira'),
    name: sinkName,
    /** The Jira Cloud site, `https://SITE.atlassian.net`. */
    url: httpUrl,
    /** The account the API token belongs to (basic auth user). */
    email: z.email().max(254),
    /** Key of the project the issues are created in. */
    project: z.string().regex(/^[A-Z][A-Z0-9_]{1,99}$/, 'must be a Jira project key (SEC)'),
    /** Issue type of the tickets. */
    issueType: z.string().min(1).max(100).default('Task'),
    /** Transition (or target status) names that close and reopen a ticket in the project's workflow. */
    closeTransition: transitionName.default('Done'),
    reopenTransition: transitionName.default('To Do'),
    /** Owner team (from alerting.owners) → Atlassian account id the issue is assigned to. */
    assignees: assigneeMap(z.string().regex(/^[A-Za-z0-9:_-]{1,128}$/, 'must be an Atlassian account id')),
    ...ticketShape,
  })
  .superRefine((c, ctx) => {
    const issue = tokenSourceIssue(c);
    if (issue) ctx.addIssue({ code: 'custom', ...issue });
  });

/** A parsed Jira config. */
export type JiraConfig = z.output<typeof JiraConfigSchema>;

/**
 * An Atlassian Document Format document: the lead sentence, the alert's facts in a code block, and a
 * link to the alert. Text nodes are plain text in ADF: nothing in them is markup.
 */
export function adfOf(lead: string, alert: Notification) {
  const facts = alertFacts(alert).map(([k, v]) => `${k}: ${v}`).join('\n');
  const link = /^https?:\/\//.test(alert.url) ? [{ type: 'paragraph', content: [{ type: 'text', text: 'The alert in Driftwatch', marks: [{ type: 'link', attrs: { href: alert.url } }] }] }] : [];
  return {
    type: 'doc',
    version: 1,
    content: [{ type: 'paragraph', content: [{ type: 'text', text: lead }] }, { type: 'codeBlock', attrs: { language: 'text' }, content: [{ type: 'text', text: facts }] }, ...link],
  };
}

/** The body of `createIssue`. Pure. */
export function buildJiraIssue(t: TicketOpening, config: Pick<JiraConfig, 'project' | 'issueType'>) {
  return {
    fields: {
      project: { key: config.project },
      summary: t.title,
      issuetype: { name: config.issueType },
      description: adfOf(commentLead({ kind: 'open', replaces: t.replaces, alert: t.alert }), t.alert),
      labels: t.labels,
      ...(typeof t.assignee === 'string' ? { assignee: { accountId: t.assignee } } : {}),
    },
  };
}

/** The body of `addComment`. Pure. */
export function buildJiraComment(c: TicketComment) {
  return { body: adfOf(commentLead(c), c.alert) };
}

/** The body of `doTransition`. Pure. */
export function buildJiraTransition(id: string) {
  return { transition: { id } };
}

const CreatedAnswer = z.object({ key: z.string().regex(/^[A-Z][A-Z0-9_]*-[0-9]+$/) });
const TransitionsAnswer = z.object({ transitions: z.array(z.object({ id: z.string().max(64), name: z.string().max(255).optional(), to: z.object({ name: z.string().max(255).optional() }).optional() })).max(500) });

/** The id of the transition named `wanted` (its name or its target status, case-insensitively), or null. */
export function transitionId(answer: z.output<typeof TransitionsAnswer>, wanted: string): string | null {
  const w = wanted.toLowerCase();
  return (answer.transitions.find((t) => t.name?.toLowerCase() === w) ?? answer.transitions.find((t) => t.to?.name?.toLowerCase() === w))?.id ?? null;
}

/** Create a Jira Cloud sink (reads its token: a missing one stops startup). */
export function createJiraSink(config: JiraConfig, deps: TicketDeps = {}): Sink {
  const token = tokenReader(config);
  const call = ticketHttp(config.url, config, token, (secret) => ({ accept: 'application/json', authorization: `Basic ${Buffer.from(`${config.email}:${secret}`).toString('base64')}` }), deps);
  const site = config.url.replace(/\/+$/, '');
  const issue = (key: string) => `/rest/api/3/issue/${encodeURIComponent(key)}`;
  const transition = async (key: string, wanted: string, signal: AbortSignal) => {
    const answer = answerOf(TransitionsAnswer, await call('GET', `${issue(key)}/transitions`, undefined, signal), 'getTransitions');
    const id = transitionId(answer, wanted);
    if (id === null) throw new DeliveryError('rejected', `the issue's workflow offers no transition named ${JSON.stringify(wanted)} (closeTransition / reopenTransition)`, undefined, undefined);
    await call('POST', `${issue(key)}/transitions`, buildJiraTransition(id), signal);
  };
  const tracker: TicketTracker = {
    async open(t, signal) {
      const created = answerOf(CreatedAnswer, await call('POST', '/rest/api/3/issue', buildJiraIssue(t, config), signal), 'createIssue');
      return { ref: created.key, url: `${site}/browse/${created.key}` };
    },
    async comment(key, c, signal) {
      await call('POST', `${issue(key)}/comment`, buildJiraComment(c), signal);
    },
    close: (key, signal) => transition(key, config.closeTransition, signal),
    reopen: (key, signal) => transition(key, config.reopenTransition, signal),
  };
  return createTicketSink('jira', config, tracker, deps);
}

/** The Jira sink type, for the registry in ./index.ts. */
export const jiraSinkType = { type: 'jira', schema: JiraConfigSchema, create: createJiraSink } as const;
