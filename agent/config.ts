/**
 * The agent's settings, each declared once with its flag and help (runtime/flags.ts): the schema,
 * `driftwatch agent`'s flags and its --help all come from the table below.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { DEFAULT_GENERALIZATION, MAX_PEER_EVIDENCE } from '../core/baseline.js';
import { DEFAULT_CLUSTER_CIDRS } from '../core/ip.js';
import { boolFlag, cidr, durationMs, hostPort, loadConfig } from '../runtime/config.js';
import { defineSettings, fileOnly, flag } from '../runtime/flags.js';
import { LOG_LEVELS } from '../runtime/logger.js';
import { parseSourceSpec } from './sources/index.js';

/** Every agent setting: schema, flag and help (file keys in camelCase; flags in kebab-case). */
export const AGENT_SETTINGS = defineSettings({
  node: flag(z.string().min(1).max(253).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Kubernetes node name (lower-case DNS name)'), {
    arg: 'NAME',
    help: "this node's name; default $NODE_NAME or the hostname",
  }),
  sources: flag(
    z
      .array(z.string().max(4096))
      .min(1, 'give at least one --source')
      .superRefine((specs, ctx) => {
        for (const s of specs) {
          try {
            parseSourceSpec(s);
          } catch (err) {
            ctx.addIssue({ code: 'custom', message: (err as Error).message });
          }
        }
        if (new Set(specs).size !== specs.length) ctx.addIssue({ code: 'custom', message: 'the same source is given twice' });
      }),
    { flag: 'source', arg: 'SPEC', repeatable: true, help: 'where events come from' },
  ),
  collector: flag(hostPort, { arg: 'HOST:PORT', help: 'collector gRPC address' }),
  stateDir: flag(z.string().min(1), { arg: 'DIR', help: 'spool, baselines and source positions' }),
  learningWindow: flag(durationMs.default(3_600_000), { arg: 'DUR', help: 'event time each image is learned before enforcing; default 1h' }),
  /** Learning goes on until no new entry appeared for this long (0: the window alone decides). */
  quietPeriod: flag(durationMs.default(600_000), { arg: 'DUR', help: 'learning goes on until nothing new appeared for this long; default 10m' }),
  /** Learning never lasts longer than this. */
  maxLearningWindow: flag(durationMs.refine((ms) => ms >= 60_000, 'must be at least 1m').default(86_400_000), { arg: 'DUR', help: 'learning never lasts longer; default 24h' }),
  /** A new image version under an enforcing baseline: its new behaviour is learned (flagged for review) for this long instead of alerting; 0 = it alerts. */
  versionGrace: flag(durationMs.refine((ms) => ms <= 7 * 86_400_000, 'must be at most 7d').default(0), {
    arg: 'DUR',
    help: "a new image version's new behaviour is learned, flagged for review, for\nthis long instead of alerting; default 0 = it alerts\n(per namespace or image: learningOverrides in the config file)",
  }),
  /** Other windows for some namespaces or images; the first match wins. */
  learningOverrides: fileOnly(
    z
      .array(
        z.strictObject({
          namespace: z.array(z.string().min(1).max(63)).min(1).max(100).optional(),
          /** Globs over the baseline key (docker.io/acme/*). */
          image: z.array(z.string().min(1).max(512)).min(1).max(100).optional(),
          learningWindow: durationMs.optional(),
          quietPeriod: durationMs.optional(),
          maxLearningWindow: durationMs.optional(),
          versionGrace: durationMs.optional(),
        }),
      )
      .max(200)
      .default([]),
    'other learning windows for some namespaces or images; the first match wins',
  ),
  /** When many public addresses on one port are learned as a block or as any public peer (core/baseline PeerGeneralization); 0 turns a rule off. */
  peerGeneralization: fileOnly(
    z
      .strictObject({
        blockAt: z.number().int().min(0).max(MAX_PEER_EVIDENCE).default(DEFAULT_GENERALIZATION.blockAt),
        wideBlockAt: z.number().int().min(0).max(MAX_PEER_EVIDENCE).default(DEFAULT_GENERALIZATION.wideBlockAt),
        widestPrefix4: z.number().int().min(8).max(24).default(DEFAULT_GENERALIZATION.widestPrefix4),
        widestPrefix6: z.number().int().min(16).max(64).default(DEFAULT_GENERALIZATION.widestPrefix6),
        classAt: z.number().int().min(0).max(MAX_PEER_EVIDENCE).default(DEFAULT_GENERALIZATION.classAt),
      })
      .default({ ...DEFAULT_GENERALIZATION }),
    'when many public addresses on one port are learned as a block or as any public peer',
  ),
  baselineKey: flag(z.enum(['repository', 'tag', 'digest']).default('repository'), { arg: 'MODE', help: 'repository (default) | tag | digest' }),
  httpListen: flag(hostPort.default('127.0.0.1:9464'), { arg: 'HOST:PORT', help: '/metrics, /livez, /readyz; default 127.0.0.1:9464' }),
  /** A port of its own for the kubelet's probes (/livez, /healthz, /readyz), so that no scrape storm delays them ('' = none). */
  probeListen: flag(z.union([z.literal(''), hostPort]).default(''), { arg: 'HOST:PORT', help: '/livez, /readyz alone on a port of their own, for the kubelet (none unless given)' }),
  logLevel: flag(z.enum(LOG_LEVELS).default('info'), { arg: 'LEVEL', help: `${LOG_LEVELS.join('|')}; default info` }),
  maxRecordBytes: flag(z.coerce.number().int().min(1024).max(64 << 20).default(1 << 20), { arg: 'N', help: 'longest event record accepted; default 1048576' }),
  maxSpoolBytes: flag(z.coerce.number().int().min(1 << 20).default(256 << 20), {
    arg: 'N',
    help: 'spool bound; beyond it the lowest-severity, then oldest, deviations are\ndropped (counted); default 268435456',
  }),
  clusterCidrs: flag(z.array(cidr).default(() => [...DEFAULT_CLUSTER_CIDRS]), { flag: 'cluster-cidr', arg: 'CIDR', repeatable: true, help: 'in-cluster address range; default RFC 1918 + CGNAT + ULA' }),
  drainTimeout: flag(durationMs.default(10_000), { arg: 'DUR', help: 'how long shutdown waits for the spool to drain; default 10s' }),
  /** How often counts and last-seen times of known entries are persisted and sent (new entries go at once). */
  statsInterval: flag(durationMs.refine((ms) => ms >= 1_000, 'must be at least 1s').default(60_000), {
    arg: 'DUR',
    help: 'how often entry counts and last-seen times are persisted and sent; new\nentries go at once; default 60s',
  }),
  /** How long a starting agent waits for the cluster's baselines before reading events (0: not at all). */
  clusterSyncTimeout: flag(durationMs.refine((ms) => ms <= 600_000, 'must be at most 10m').default(10_000), {
    arg: 'DUR',
    help: "how long a starting agent waits for the cluster's baselines before\nreading events; default 10s, 0 = not at all",
  }),
  /**
   * The container runtime's CRI socket, asked for the image and pod of containers a source names only by
   * id (ebpf): `auto` probes /run/containerd/containerd.sock then /run/crio/crio.sock, `none` disables it.
   */
  criSocket: flag(z.string().min(1).max(4096).default('auto'), {
    arg: 'PATH',
    help: "container runtime's CRI socket for image and pod of containers named\nonly by id (ebpf); auto (default) | none | PATH",
  }),
  /** How often the containers running on the node are reported to the collector (the image inventory); 0: never. */
  inventoryInterval: flag(durationMs.refine((ms) => ms === 0 || ms >= 1_000, 'must be 0 (off) or at least 1s').default(60_000), {
    arg: 'DUR',
    help: 'how often the containers running on this node (CRI, else those seen in\nevents in the last 5m) are reported; default 60s, 0 = never',
  }),
  /** Stop when every source has ended (file sources then read to EOF instead of following). */
  exitWhenDone: flag(z.boolean().default(false), { help: 'stop when every source ended; files are read to their end' }),
  /** Plaintext to the collector, without proof of the node's identity. */
  insecure: flag(boolFlag.default(false), { help: 'plaintext, no proof of identity, with a warning' }),
  /** The CA that signed the collector's certificate (PEM). */
  tlsCa: flag(z.string().min(1).optional(), { arg: 'FILE', help: "CA of the collector's certificate; TLS to the collector" }),
  /** This node's client certificate and key (PEM); the certificate's CN is the node name. */
  tlsCert: flag(z.string().min(1).optional(), { arg: 'FILE', help: "this node's client certificate, CN = node name" }),
  tlsKey: flag(z.string().min(1).optional(), { arg: 'FILE', help: 'its private key; cert and key are re-read on every connect' }),
  /** The name to verify in the collector's certificate when it differs from the collector address's host. */
  tlsServerName: flag(z.string().min(1).max(253).optional(), { arg: 'NAME', help: "name to verify in the collector's certificate" }),
  /** A projected ServiceAccount token (audience driftwatch), re-read on every connect. */
  tokenFile: flag(z.string().min(1).optional(), {
    arg: 'FILE',
    help: 'projected ServiceAccount token (audience driftwatch), instead of a\nclient certificate; re-read on every connect',
  }),
});

/** The agent's configuration schema. */
export const AgentConfigSchema = z.strictObject(AGENT_SETTINGS.shape).superRefine((c, ctx) => {
  const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
  if ((c.tlsCert === undefined) !== (c.tlsKey === undefined)) issue(c.tlsCert === undefined ? 'tlsCert' : 'tlsKey', 'tlsCert and tlsKey go together');
  if (c.tlsCa === undefined) {
    if (c.tlsCert !== undefined || c.tokenFile !== undefined) issue('tlsCa', 'a client certificate or token needs TLS: give tlsCa, the CA of the collector\'s certificate');
    else if (!c.insecure) issue('tlsCa', 'the collector stream needs TLS: give tlsCa with tlsCert and tlsKey (this node\'s certificate; `driftwatch certs node NAME` makes one) or tokenFile, or set insecure for plaintext');
  } else if (c.tlsCert === undefined && c.tokenFile === undefined) {
    issue('tlsCert', 'the collector needs to know this node: give tlsCert and tlsKey, or tokenFile');
  }
});

/** The validated, frozen agent configuration. */
export type AgentConfig = Readonly<z.output<typeof AgentConfigSchema>>;

/** Load the agent's config from a file, the environment (DRIFTWATCH_*) and flags. */
export function loadAgentConfig(flags: Record<string, unknown>, env = process.env, file?: string): AgentConfig {
  const withNode = { ...flags };
  if (withNode.node === undefined && env.DRIFTWATCH_NODE === undefined) withNode.node = env.NODE_NAME ?? hostname().toLowerCase();
  return loadConfig(AgentConfigSchema, { file, env, envPrefix: 'DRIFTWATCH_', listKeys: AGENT_SETTINGS.cli.listKeys, flags: withNode });
}
