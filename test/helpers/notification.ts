/** Notifications for sink tests, built through notificationOf from a stored-alert shape. */
import { notificationOf, type Notification, type NotificationContext } from '../../collector/sinks/sink.js';
import type { Alert } from '../../collector/alerting/alert.js';

/** 2026-11-23T10:30:00Z */
export const T_FIRST = Date.UTC(2026, 10, 23, 10, 30, 0);

/** A stored alert: a shell spawned by nginx. */
export function shellAlert(overrides: Partial<Alert> = {}): Alert {
  return {
    fingerprint: '3f9a2c0d1e4b5a697887766554433221',
    state: 'firing',
    baselineKey: 'docker.io/library/nginx',
    image: 'docker.io/library/nginx',
    kind: 'exec',
    entry: { type: 'process', exe: '/usr/bin/dash', parent: 'nginx', user: 'root', args: '-c id;uname -a' },
    reason: 'new-executable',
    explanation: '/usr/bin/dash never ran in docker.io/library/nginx while it was learned',
    nearest: ['/usr/sbin/nginx -g daemon off; (parent containerd-shim, root)'],
    firstSeen: T_FIRST,
    lastSeen: T_FIRST + 120_000,
    count: 3,
    nodes: ['node-1', 'node-2'],
    pods: ['shop/web-7d9f-abcde', 'shop/web-7d9f-fghij'],
    lastDeviationId: 'd'.repeat(32),
    example: '/usr/bin/dash -c id;uname -a',
    createdAt: T_FIRST + 500,
    severity: 'critical',
    ruleId: 'shell-where-none',
    ruleReason: 'a shell or interpreter ran in an image whose baseline never runs one',
    team: 'storefront',
    namespace: 'shop',
    labels: { app: 'web' },
    receivers: [],
    suppressedBy: '',
    stateBy: '',
    stateAt: 0,
    stateComment: '',
    ...overrides,
  };
}

/** A notification for `shellAlert()`, with context overrides. */
export function shellNotification(ctx: Partial<NotificationContext> = {}, alert: Partial<Alert> = {}): Notification {
  return notificationOf(shellAlert(alert), {
    action: 'trigger',
    at: T_FIRST + 121_000,
    severity: 'critical',
    ruleId: 'shell-where-none',
    ruleReason: 'a shell or interpreter ran in an image whose baseline never runs one',
    team: 'storefront',
    url: 'https://driftwatch.example.com/api/v1/alerts/3f9a2c0d1e4b5a697887766554433221',
    ...ctx,
  });
}

/** A notification for a new egress to a public address. */
export function egressNotification(ctx: Partial<NotificationContext> = {}): Notification {
  return shellNotification(
    { severity: 'high', ruleId: 'public-egress', ruleReason: 'the container connected to a public address its baseline never reached', ...ctx },
    {
      fingerprint: 'aa'.repeat(16),
      kind: 'connect',
      entry: { type: 'network', direction: 'egress', protocol: 'tcp', peer: '203.0.113.50', port: 80 },
      reason: 'new-peer',
      explanation: 'docker.io/library/nginx never connected to 203.0.113.50 while it was learned',
      example: '-> 203.0.113.50:80',
      nearest: [],
      count: 1,
      pods: ['shop/web-7d9f-abcde'],
      nodes: ['node-1'],
    },
  );
}
