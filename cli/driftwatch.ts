#!/usr/bin/env node
/**
 * `driftwatch` — one CLI for every role: `agent`, `collector`, `demo`.
 * Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, camelCase } from '../runtime/config.js';
import { TlsFilesError } from '../runtime/tls.js';
import { certsCollector, certsInit, certsNode } from './certs.js';
import { VERSION } from '../runtime/version.js';
import { runReview } from './review.js';

// The agent, collector and demo load gRPC, SQLite and every source: only when that command runs,
// so the review commands start in a fraction of the time.
const { SOURCES } = ['agent', 'help', '--help', '-h', undefined].includes(process.argv[2]) ? await import('../agent/sources/index.js') : { SOURCES: [] as { usage: string }[] };

type Options = NonNullable<ParseArgsConfig['options']>;

const AGENT_OPTIONS: Options = {
  config: { type: 'string' },
  source: { type: 'string', multiple: true },
  collector: { type: 'string' },
  node: { type: 'string' },
  'state-dir': { type: 'string' },
  'learning-window': { type: 'string' },
  'baseline-key': { type: 'string' },
  'http-listen': { type: 'string' },
  'probe-listen': { type: 'string' },
  'log-level': { type: 'string' },
  'max-record-bytes': { type: 'string' },
  'max-spool-bytes': { type: 'string' },
  'cluster-cidr': { type: 'string', multiple: true },
  'drain-timeout': { type: 'string' },
  'stats-interval': { type: 'string' },
  'quiet-period': { type: 'string' },
  'max-learning-window': { type: 'string' },
  'version-grace': { type: 'string' },
  'cluster-sync-timeout': { type: 'string' },
  'cri-socket': { type: 'string' },
  'exit-when-done': { type: 'boolean' },
  insecure: { type: 'boolean' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-server-name': { type: 'string' },
  'token-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const COLLECTOR_OPTIONS: Options = {
  config: { type: 'string' },
  db: { type: 'string' },
  'grpc-listen': { type: 'string' },
  'http-listen': { type: 'string' },
  'probe-listen': { type: 'string' },
  'public-url': { type: 'string' },
  'log-level': { type: 'string' },
  'max-batch-items': { type: 'string' },
  'ingest-thread': { type: 'string' },
  'max-message-bytes': { type: 'string' },
  'stream-max-clients': { type: 'string' },
  'stream-queue': { type: 'string' },
  'stream-queue-bytes': { type: 'string' },
  'stream-slow-timeout': { type: 'string' },
  'stream-heartbeat': { type: 'string' },
  'stream-allowed-origin': { type: 'string', multiple: true },
  insecure: { type: 'boolean' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-reload-interval': { type: 'string' },
  'agent-auth': { type: 'string' },
  'agent-service-account': { type: 'string', multiple: true },
  'kube-api-server': { type: 'string' },
  'kube-token-file': { type: 'string' },
  'kube-ca-file': { type: 'string' },
  'token-audience': { type: 'string' },
  'max-streams-per-node': { type: 'string' },
  'api-tokens-file': { type: 'string' },
  'metrics-auth': { type: 'boolean' },
  'metrics-interval': { type: 'string' },
  'stream-max-clients-per-token': { type: 'string' },
  'api-rate-limit': { type: 'string' },
  'max-body-bytes': { type: 'string' },
  'http-max-connections': { type: 'string' },
  'http-max-connections-per-address': { type: 'string' },
  'silent-after': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const CERTS_OPTIONS: Options = {
  dir: { type: 'string' },
  name: { type: 'string', multiple: true },
  days: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const DEMO_OPTIONS: Options = {
  events: { type: 'string' },
  'learning-window': { type: 'string' },
  serve: { type: 'boolean' },
  keep: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const USAGE = `driftwatch ${VERSION} — learn what each container image does at runtime, alert when it does something new

Usage:
  driftwatch demo [--serve] [--keep] [--events FILE] [--learning-window 1h]
      Run a collector and an agent on a recorded Falco stream shipped with Driftwatch,
      and print what was learned and what was caught.
  driftwatch collector --db FILE --tls-cert FILE --tls-key FILE --tls-ca FILE --api-tokens-file FILE
                       [--grpc-listen HOST:PORT] [--http-listen HOST:PORT] [--insecure]
      Receive deviations from agents, store them (SQLite), serve the API under /api/v1/.
  driftwatch agent --source SPEC [--source SPEC ...] --collector HOST:PORT --node NAME
                   --state-dir DIR --tls-ca FILE --tls-cert FILE --tls-key FILE [--insecure]
                   [--learning-window 1h] [--baseline-key repository|tag|digest]
      Learn baselines per image from node events and send deviations to the collector.
  driftwatch alerts list|show|ack|resolve|accept [ID] [--url URL]
      Review alerts on a collector (driftwatch alerts --help).
  driftwatch exceptions list|add|remove [--url URL]
      Risks accepted with a reason, an owner and an expiry (driftwatch exceptions --help).
  driftwatch baselines list|show|diff|lock|unlock|relearn|approve|remove|add|export|import [--server URL]
      Review and lock baselines; export them as YAML, a NetworkPolicy or Falco rules; apply a
      folder of Baseline documents as the desired state (driftwatch baselines --help).
  driftwatch nodes list|quarantine|release|taught|drop [NODE] [--url URL]
      The nodes' agents; which nodes taught each entry; quarantine a node found compromised
      (driftwatch nodes --help).
  driftwatch certs init|collector|node NAME... --dir DIR [--name HOST ...] [--days N]
      A small CA: the CA and the collector's certificate (init), a new collector certificate
      (collector), a client certificate per node, CN = node name (node).

Sources (--source):
${SOURCES.map((s) => `  ${s.usage}`).join('\n')}

Every flag can also come from a YAML file (--config FILE, keys in camelCase) or from the
environment (DRIFTWATCH_LEARNING_WINDOW=2h); flags win over the environment, the environment
over the file. Run \`driftwatch <command> --help\` for all flags of a command.`;

const COMMAND_HELP: Record<string, string> = {
  agent: `driftwatch agent — flags (config key in parentheses):
  --source SPEC            where events come from; repeatable (sources)
  --collector HOST:PORT    collector gRPC address (collector)
  --node NAME              this node's name; default $NODE_NAME or the hostname (node)
  --state-dir DIR          spool, baselines and source positions (stateDir)
  --learning-window DUR    event time each image is learned before enforcing; default 1h (learningWindow)
  --quiet-period DUR       learning goes on until nothing new appeared for this long; default 10m (quietPeriod)
  --max-learning-window DUR  learning never lasts longer; default 24h (maxLearningWindow)
  --version-grace DUR      a new image version's new behaviour is learned, flagged for review, for
                           this long instead of alerting; default 0 = it alerts (versionGrace)
                           (per namespace or image: learningOverrides in the config file)
  --baseline-key MODE      repository (default) | tag | digest (baselineKey)
  --http-listen HOST:PORT  /metrics, /livez, /readyz; default 127.0.0.1:9464 (httpListen)
  --probe-listen HOST:PORT  /livez, /readyz alone on a port of their own, for the kubelet; default none (probeListen)
  --cluster-cidr CIDR      in-cluster address range; repeatable; default RFC 1918 + CGNAT + ULA (clusterCidrs)
  --max-record-bytes N     longest event record accepted; default 1048576 (maxRecordBytes)
  --max-spool-bytes N      spool bound; beyond it the lowest-severity, then oldest, deviations are
                           dropped (counted); default 268435456 (maxSpoolBytes)
  --drain-timeout DUR      how long shutdown waits for the spool to drain; default 10s (drainTimeout)
  --stats-interval DUR     how often entry counts and last-seen times are persisted and sent; new
                           entries go at once; default 60s (statsInterval)
  --cluster-sync-timeout DUR  how long a starting agent waits for the cluster's baselines before
                           reading events; default 10s, 0 = not at all (clusterSyncTimeout)
  --cri-socket PATH        container runtime's CRI socket for image and pod of containers named
                           only by id (ebpf); auto (default) | none | PATH (criSocket)
  --exit-when-done         stop when every source ended; files are read to their end (exitWhenDone)
  --log-level LEVEL        fatal|error|warn|info|debug|trace|silent; default info (logLevel)
  --tls-ca FILE            CA of the collector's certificate; TLS to the collector (tlsCa)
  --tls-cert FILE          this node's client certificate, CN = node name (tlsCert)
  --tls-key FILE           its private key (tlsKey); cert and key are re-read on every connect
  --tls-server-name NAME   name to verify in the collector's certificate (tlsServerName)
  --token-file FILE        projected ServiceAccount token (audience driftwatch), instead of a
                           client certificate; re-read on every connect (tokenFile)
  --insecure               plaintext, no proof of identity, with a warning (insecure)
  --config FILE            YAML file with the settings above`,
  collector: `driftwatch collector — flags (config key in parentheses):
  --db FILE                SQLite database file, created if missing (db)
  --grpc-listen HOST:PORT  agent ingest; default 0.0.0.0:7070 (grpcListen)
  --http-listen HOST:PORT  API, /metrics, /livez, /readyz; default 0.0.0.0:8080 (httpListen)
  --probe-listen HOST:PORT  /livez, /readyz alone on a port of their own, for the kubelet; default none (probeListen)
  --public-url URL         where people reach the collector, for links in notifications (publicUrl)
  --max-batch-items N      most records per agent batch; default 2000 (maxBatchItems)
  --ingest-thread WHERE    where ingest commits run: worker (default; a thread of its own) | main (ingestThread)
  --max-message-bytes N    largest gRPC message; default 16777216 (maxMessageBytes)
  --stream-max-clients N   websocket live-feed clients at once; default 64 (streamMaxClients)
  --stream-max-clients-per-token N  live-feed clients at once per API token; default 16 (streamMaxClientsPerToken)
  --stream-queue N         messages held for a live-feed client that is behind; default 1000 (streamQueue)
  --stream-queue-bytes N   bytes held for such a client; default 4194304 (streamQueueBytes)
  --stream-slow-timeout DUR  a client behind this long is closed; default 30s (streamSlowTimeout)
  --stream-heartbeat DUR   ping interval, a missed pong ends the client; default 30s (streamHeartbeat)
  --stream-allowed-origin ORIGIN  browser origin allowed besides the collector's own; repeatable (streamAllowedOrigins)
  --log-level LEVEL        default info (logLevel)
  --tls-cert FILE          the collector's certificate for the agent stream (tlsCert)
  --tls-key FILE           its private key (tlsKey)
  --tls-ca FILE            CA that signs agent certificates (tlsCa)
  --tls-reload-interval D  how often TLS files are checked for rotation; default 10s (tlsReloadInterval)
  --agent-auth MODE        certificate (CN = node, default) | token (TokenReview) (agentAuth)
  --agent-service-account NS:NAME  agent service account(s) for agentAuth token (agentServiceAccounts)
  --kube-api-server URL    API server for TokenReviews; default from KUBERNETES_SERVICE_HOST (kubeApiServer)
  --kube-token-file FILE   the collector's own token; default the pod's (kubeTokenFile)
  --kube-ca-file FILE      CA of the API server; default the pod's (kubeCaFile)
  --token-audience AUD     audience agent tokens must carry; default driftwatch (tokenAudience)
  --max-streams-per-node N default 4 (maxStreamsPerNode)
  --api-tokens-file FILE   YAML API tokens with roles; re-read on change (apiTokensFile)
  --metrics-auth           /metrics needs a viewer token (metricsAuth)
  --metrics-interval D     /metrics is rendered at most 5 times per interval; default 1s (metricsInterval)
  --api-rate-limit N       requests per second per API token; default 50 (apiRateLimit)
  --max-body-bytes N       largest HTTP request body; default 1048576 (maxBodyBytes)
  --http-max-connections N  API connections at once; more are closed on accept; default 1024 (httpMaxConnections)
  --http-max-connections-per-address N  the same from one address; default 256 (httpMaxConnectionsPerAddress)
  --silent-after D         a node whose agent sent nothing this long is marked silent and alerted on; default 5m (silentAfter)
  --insecure               plaintext agent stream and/or an API without tokens, where not configured (insecure)
  --config FILE            YAML file with the settings above`,
  certs: `driftwatch certs — a small CA in one directory:
  certs init --dir DIR [--name HOST ...] [--days N]      ca.crt, ca.key, collector.crt, collector.key
  certs collector --dir DIR [--name HOST ...] [--days N] a new collector.crt/.key from the CA
  certs node NAME [NAME ...] --dir DIR [--days N]        node-NAME.crt/.key: client certificates, CN = NAME
  --name HOST   DNS name or IP the collector is reached by; repeatable; default localhost, 127.0.0.1,
                ::1, driftwatch-collector[.driftwatch.svc[.cluster.local]]
  --days N      validity; default 365 (the CA: 3650)`,
  demo: `driftwatch demo — flags:
  --events FILE            a Falco JSON file to use instead of the shipped recording
  --learning-window DUR    default 1h
  --serve                  keep the collector's API running after the demo until Ctrl-C
  --keep                   keep the demo's directory (database, logs, agent state)`,
};

/** Map parsed kebab-case flags to camelCase config keys (repeatable flags to their plural keys). */
function flagsToConfig(values: Record<string, unknown>): { flags: Record<string, unknown>; file: string | undefined } {
  const flags: Record<string, unknown> = {};
  let file: string | undefined;
  for (const [name, value] of Object.entries(values)) {
    if (name === 'help') continue;
    if (name === 'config') file = value as string;
    else if (name === 'source') flags.sources = value;
    else if (name === 'cluster-cidr') flags.clusterCidrs = value;
    else if (name === 'stream-allowed-origin') flags.streamAllowedOrigins = value;
    else if (name === 'agent-service-account') flags.agentServiceAccounts = value;
    else flags[camelCase(name)] = value;
  }
  return { flags, file };
}

function onSignals(stop: () => Promise<void>): void {
  let signalled = false;
  const handler = (signal: NodeJS.Signals) => {
    if (signalled) process.exit(1);
    signalled = true;
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(`driftwatch: shutdown after ${signal} failed: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

async function certs(positionals: string[], values: Record<string, unknown>): Promise<number> {
  const [sub, ...names] = positionals;
  const dir = values.dir as string | undefined;
  const days = values.days === undefined ? undefined : Number(values.days);
  if (!dir || (days !== undefined && (!Number.isInteger(days) || days < 1 || days > 36_500)) || (sub !== 'node' && names.length > 0)) {
    console.error(`driftwatch certs: give a subcommand, --dir DIR, and --days as a whole number of days\n\n${COMMAND_HELP.certs}`);
    return 2;
  }
  let written: string[];
  try {
    if (sub === 'init') written = await certsInit(dir, { names: values.name as string[] | undefined, days });
    else if (sub === 'collector') written = await certsCollector(dir, { names: values.name as string[] | undefined, days });
    else if (sub === 'node') written = await certsNode(dir, names, { days });
    else {
      console.error(`driftwatch certs: unknown subcommand ${JSON.stringify(sub ?? '')}; one of: init, collector, node\n\n${COMMAND_HELP.certs}`);
      return 2;
    }
  } catch (err) {
    console.error(`driftwatch certs: ${(err as Error).message}`);
    return 1;
  }
  for (const f of written) console.log(`${dir.replace(/\/$/, '')}/${f}`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'version' || command === '--version') {
    console.log(VERSION);
    return 0;
  }
  if (command === 'alerts' || command === 'exceptions') return runReview(command, rest);
  if (command === 'baselines') return (await import('./baselines.js')).runBaselines(rest);
  if (command === 'nodes') return (await import('./nodes.js')).runNodes(rest);
  const options =
    command === 'agent' ? AGENT_OPTIONS : command === 'collector' ? COLLECTOR_OPTIONS : command === 'demo' ? DEMO_OPTIONS : command === 'certs' ? CERTS_OPTIONS : null;
  if (!options) {
    console.error(`driftwatch: unknown command ${JSON.stringify(command)}; one of: demo, collector, agent, certs, alerts, exceptions, baselines, nodes\n\n${USAGE}`);
    return 2;
  }
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: rest, options, strict: true, allowPositionals: command === 'certs' }));
  } catch (err) {
    console.error(`driftwatch ${command}: ${(err as Error).message}\n\n${COMMAND_HELP[command]}`);
    return 2;
  }
  if (values.help) {
    console.log(COMMAND_HELP[command]);
    return 0;
  }
  try {
    if (command === 'certs') return await certs(positionals, values);
    if (command === 'demo') {
      const { runDemo } = await import('./demo.js');
      return await runDemo({
        events: values.events as string | undefined,
        learningWindow: values['learning-window'] as string | undefined,
        serve: values.serve === true,
        keep: values.keep === true,
      });
    }
    const { flags, file } = flagsToConfig(values);
    if (command === 'collector') {
      const { loadCollectorConfig, startCollector } = await import('../collector/main.js');
      const collector = await startCollector(loadCollectorConfig(flags, process.env, file));
      onSignals(() => collector.stop());
      return await new Promise<number>(() => {});
    }
    const { loadAgentConfig, startAgent } = await import('../agent/main.js');
    const agent = await startAgent(loadAgentConfig(flags, process.env, file));
    onSignals(() => agent.stop());
    await agent.done;
    return agent.failedSources.length > 0 ? 1 : 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`driftwatch ${command}: invalid configuration: ${err.message}`);
      return 2;
    }
    if (err instanceof TlsFilesError) {
      console.error(`driftwatch ${command}: cannot use the TLS files: ${err.message}`);
      return 2;
    }
    // A node that cannot run the ebpf source: the message names every missing prerequisite; a stack adds nothing.
    if (err instanceof Error && err.name === 'EbpfError' && (err as Error & { code?: string }).code === 'prerequisites_missing') {
      console.error(`driftwatch ${command}: ${err.message}`);
      return 2;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`driftwatch: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
