/**
 * Silent nodes: an agent not heard from is a blind spot, told like a deviation alert (severity high,
 * rule `agent-silent`) to the default receivers through the outbox, once per silence, also across
 * collector restarts (the outbox remembers); resolved on the sinks that got it when the node is back.
 * The nodes silent now are re-sent to Alertmanager like open alerts.
 */
import type { Logger } from '../../runtime/logger.js';
import { createSerial } from '../../runtime/serial.js';
import type { Notification } from '../sinks/index.js';
import type { Async } from '../store/async.js';
import type { OutboxStore } from '../store/store.js';
import type { AlertingMetrics } from './metrics.js';
import type { Outbox } from './outbox.js';
import { apiLink } from './policy.js';
import { openTriggerSinks } from './queries.js';

/** What silent-node alerts need. */
export interface NodeSilenceDeps {
  store: Async<OutboxStore>;
  outbox: Pick<Outbox, 'enqueue'>;
  /** Where a silence is told: the default receivers that are configured sinks. */
  receivers: readonly string[];
  /** Base URL under which nodes are linked ('' = no link). */
  publicUrl: string;
  metrics: Pick<AlertingMetrics, 'suppressed'>;
  logger: Logger;
  now: () => number;
}

/** Silent-node alerts. */
export interface NodeSilence {
  /** The agent of `node` has not been heard from since `lastContact`: tell the receivers (once per silence). */
  nodeSilent(node: string, lastContact: number): Promise<void>;
  /** The silent `node` is heard from again: resolve what nodeSilent sent, on the sinks that got it. */
  nodeBack(node: string, lastContact: number): Promise<void>;
  /** The trigger of each node silent now. */
  firing(): Iterable<Notification>;
  /** Resolves once every silence and return asked for so far is written. */
  idle(): Promise<void>;
}

/** The fingerprint of `node`'s silence (never a deviation alert's: those are hex). */
const agentFingerprint = (node: string) => `agent-silent/${node}`;

/** Silent-node alerts through the outbox. */
export function createNodeSilence(deps: NodeSilenceDeps): NodeSilence {
  const { store, outbox, receivers, metrics, logger, now } = deps;
  /** Silent nodes and their trigger. */
  const silentNodes = new Map<string, Notification>();
  // One at a time, in order: each reads the outbox and writes what it read decides. A node back right
  // after its silence must see the trigger that silence wrote, or its page would never be resolved;
  // and a silence told twice at once must page once.
  const turns = createSerial();

  function agentNotification(node: string, action: 'trigger' | 'resolve', lastContact: number): Notification {
    const last = lastContact > 0 ? new Date(lastContact).toISOString() : 'never';
    return {
      action,
      at: now(),
      fingerprint: agentFingerprint(node),
      severity: 'high',
      ruleId: 'agent-silent',
      ruleReason: 'a node whose agent is silent is a blind spot: nothing there is checked against its baseline',
      baselineKey: '',
      image: '',
      kind: 'agent',
      entry: null,
      description: `agent on node ${node}: no contact since ${last}`,
      title: action === 'trigger' ? `node ${node}: Driftwatch agent silent since ${last}` : `node ${node}: Driftwatch agent reporting again`,
      example: '',
      reason: 'agent-silent',
      explanation:
        action === 'trigger'
          ? `No message from the Driftwatch agent on node ${node} since ${last}. Its deviations wait in its spool if it runs but cannot reach the collector; if it is down, nothing on the node is being checked. Look at the agent pod on this node (crash loop, eviction, network policy, certificate or token).`
          : `The Driftwatch agent on node ${node} is reporting again (last contact ${last}); what it spooled meanwhile is being delivered.`,
      nearest: [],
      count: 1,
      firstSeen: lastContact,
      lastSeen: lastContact,
      nodes: [node],
      pods: [],
      namespace: '',
      team: '',
      url: apiLink(deps.publicUrl, `nodes/${encodeURIComponent(node)}`),
      actor: '',
      comment: '',
      state: action === 'resolve' ? 'resolved' : 'firing',
      category: 'agent-silent',
    };
  }

  return {
    nodeSilent(node, lastContact) {
      const n = agentNotification(node, 'trigger', lastContact);
      silentNodes.set(node, n);
      const fp = agentFingerprint(node);
      return turns.run(async () => {
        // Already told (a collector restart while the node stayed silent): do not page twice.
        if ((await openTriggerSinks(store, fp, now())).length > 0) return;
        logger.warn({ node, lastContact: new Date(lastContact).toISOString(), receivers }, 'agent silent: this node is a blind spot');
        if (receivers.length === 0) {
          metrics.suppressed.inc({ reason: 'no-receiver' });
          return;
        }
        const body = JSON.stringify(n);
        await outbox.enqueue(receivers.map((sink) => ({ alert: fp, sink, action: 'trigger', body, state: 'pending', lastError: '' })));
      });
    },
    nodeBack(node, lastContact) {
      silentNodes.delete(node);
      const fp = agentFingerprint(node);
      return turns.run(async () => {
        const sinks = await openTriggerSinks(store, fp, now());
        logger.info({ node, receivers: sinks }, 'agent reporting again');
        if (sinks.length === 0) return;
        const body = JSON.stringify(agentNotification(node, 'resolve', lastContact));
        await outbox.enqueue(sinks.map((sink) => ({ alert: fp, sink, action: 'resolve', body, state: 'pending', lastError: '' })));
      });
    },
    firing: () => silentNodes.values(),
    idle: turns.idle,
  };
}
