#!/usr/bin/env node
/**
 * `driftwatch` — one CLI for every role: `agent`, `collector`, `demo`.
 * Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, camelCase } from '../runtime/config.js';
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
  'log-level': { type: 'string' },
  'max-record-bytes': { type: 'string' },
  'max-spool-bytes': { type: 'string' },
  'cluster-cidr': { type: 'string', multiple: true },
  'drain-timeout': { type: 'string' },
  'stats-interval': { type: 'string' },
  'exit-when-done': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const COLLECTOR_OPTIONS: Options = {
  config: { type: 'string' },
  db: { type: 'string' },
  'grpc-listen': { type: 'string' },
  'http-listen': { type: 'string' },
  'log-level': { type: 'string' },
  'max-batch-items': { type: 'string' },
  'max-message-bytes': { type: 'string' },
  'stream-max-clients': { type: 'string' },
  'stream-queue': { type: 'string' },
  'stream-queue-bytes': { type: 'string' },
  'stream-slow-timeout': { type: 'string' },
  'stream-heartbeat': { type: 'string' },
  'stream-allowed-origin': { type: 'string', multiple: true },
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
  driftwatch collector --db FILE [--grpc-listen HOST:PORT] [--http-listen HOST:PORT]
      Receive deviations from agents, store them (SQLite), serve the API under /api/v1/.
  driftwatch agent --source SPEC [--source SPEC ...] --collector HOST:PORT --node NAME
                   --state-dir DIR [--learning-window 1h] [--baseline-key repository|tag|digest]
      Learn baselines per image from node events and send deviations to the collector.
  driftwatch alerts list|show|ack|resolve|accept [ID] [--url URL]
      Review alerts on a collector (driftwatch alerts --help).
  driftwatch exceptions list|add|remove [--url URL]
      Risks accepted with a reason, an owner and an expiry (driftwatch exceptions --help).

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
  --baseline-key MODE      repository (default) | tag | digest (baselineKey)
  --http-listen HOST:PORT  /metrics, /livez, /readyz; default 127.0.0.1:9464 (httpListen)
  --cluster-cidr CIDR      in-cluster address range; repeatable; default RFC 1918 + CGNAT + ULA (clusterCidrs)
  --max-record-bytes N     longest event record accepted; default 1048576 (maxRecordBytes)
  --max-spool-bytes N      spool bound, oldest deviations dropped beyond it; default 268435456 (maxSpoolBytes)
  --drain-timeout DUR      how long shutdown waits for the spool to drain; default 10s (drainTimeout)
  --stats-interval DUR     how often entry counts and last-seen times are persisted and sent; new
                           entries go at once; default 60s (statsInterval)
  --exit-when-done         stop when every source ended; files are read to their end (exitWhenDone)
  --log-level LEVEL        fatal|error|warn|info|debug|trace|silent; default info (logLevel)
  --config FILE            YAML file with the settings above`,
  collector: `driftwatch collector — flags (config key in parentheses):
  --db FILE                SQLite database file, created if missing (db)
  --grpc-listen HOST:PORT  agent ingest; default 0.0.0.0:7070 (grpcListen)
  --http-listen HOST:PORT  API, /metrics, /livez, /readyz; default 0.0.0.0:8080 (httpListen)
  --max-batch-items N      most records per agent batch; default 2000 (maxBatchItems)
  --max-message-bytes N    largest gRPC message; default 16777216 (maxMessageBytes)
  --stream-max-clients N   websocket live-feed clients at once; default 64 (streamMaxClients)
  --stream-queue N         messages held for a live-feed client that is behind; default 1000 (streamQueue)
  --stream-queue-bytes N   bytes held for such a client; default 4194304 (streamQueueBytes)
  --stream-slow-timeout DUR  a client behind this long is closed; default 30s (streamSlowTimeout)
  --stream-heartbeat DUR   ping interval, a missed pong ends the client; default 30s (streamHeartbeat)
  --stream-allowed-origin ORIGIN  browser origin allowed besides the collector's own; repeatable (streamAllowedOrigins)
  --log-level LEVEL        default info (logLevel)
  --config FILE            YAML file with the settings above`,
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
  const options = command === 'agent' ? AGENT_OPTIONS : command === 'collector' ? COLLECTOR_OPTIONS : command === 'demo' ? DEMO_OPTIONS : null;
  if (!options) {
    console.error(`driftwatch: unknown command ${JSON.stringify(command)}; one of: demo, collector, agent, alerts, exceptions\n\n${USAGE}`);
    return 2;
  }
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: rest, options, strict: true, allowPositionals: false }));
  } catch (err) {
    console.error(`driftwatch ${command}: ${(err as Error).message}\n\n${COMMAND_HELP[command]}`);
    return 2;
  }
  if (values.help) {
    console.log(COMMAND_HELP[command]);
    return 0;
  }
  try {
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
