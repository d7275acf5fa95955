#!/usr/bin/env node
/**
 * `driftwatch` — one CLI for every role: `agent`, `collector`, `demo`.
 * Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../runtime/config.js';
import type { CommandLine } from '../runtime/flags.js';
import { TlsFilesError } from '../runtime/tls.js';
import { certsCollector, certsInit, certsNode } from './certs.js';
import { VERSION } from '../runtime/version.js';
import { runReview } from './review.js';

// The agent, collector and demo load gRPC, SQLite and every source: only when that command runs,
// so the review commands start in a fraction of the time.
const { SOURCES } = ['agent', 'help', '--help', '-h', undefined].includes(process.argv[2]) ? await import('../agent/sources/index.js') : { SOURCES: [] as { usage: string }[] };

type Options = NonNullable<ParseArgsConfig['options']>;

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
  driftwatch baselines list|show|diff|lock|unlock|relearn|approve|remove|add|export|import|drift [--server URL]
      Review and lock baselines; export them as YAML, a NetworkPolicy or Falco rules; apply a
      folder of Baseline documents as the desired state; allow drift per key (driftwatch baselines --help).
  driftwatch nodes list|quarantine|release|taught|drop [NODE] [--url URL]
      The nodes' agents; which nodes taught each entry; quarantine a node found compromised
      (driftwatch nodes --help).
  driftwatch images list|show|gone|export [REPOSITORY] [--url URL]
      What runs, by image and version, from the agents' container reports; is a version gone
      (exit 0), does it still run (1), or was it never seen (3); the running set for scanners
      (driftwatch images --help).
  driftwatch sbom import FILE --image REPO@sha256:DIGEST | show DIGEST | list REPO [--url URL]
      Import an image's SBOM (CycloneDX or SPDX JSON, from syft or trivy): alerts and reviews then
      name the package behind each executable (driftwatch sbom --help).
  driftwatch verify --baseline FILE (--events FILE | -- COMMAND...) [--fail-on SEVERITY] [--junit FILE] [--sarif FILE] [--write-proposal FILE]
      Check a build against its baseline in CI, without a collector: recorded Falco, Tetragon or eBPF
      events, or a command traced here with eBPF (driftwatch verify --help).
  driftwatch store migrate --from sqlite:FILE --to-file URLFILE
      Move a collector's SQLite file, everything in it, into an empty PostgreSQL database
      (driftwatch store --help).
  driftwatch certs init|collector|node NAME... --dir DIR [--name HOST ...] [--days N]
      A small CA: the CA and the collector's certificate (init), a new collector certificate
      (collector), a client certificate per node, CN = node name (node).

Sources (--source):
${SOURCES.map((s) => `  ${s.usage}`).join('\n')}

Every flag can also come from a YAML file (--config FILE, keys in camelCase) or from the
environment (DRIFTWATCH_LEARNING_WINDOW=2h); flags win over the environment, the environment
over the file. Run \`driftwatch <command> --help\` for all flags of a command.`;

/** The flags and help of the commands that run from a config (declared with their settings), loaded only for that command. */
const CONFIGURED: Record<string, () => Promise<CommandLine>> = {
  agent: async () => (await import('../agent/config.js')).AGENT_SETTINGS.cli,
  collector: async () => (await import('../collector/config.js')).COLLECTOR_SETTINGS.cli,
};

const COMMAND_HELP: Record<string, string> = {
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
  if (command === 'images') return (await import('./images.js')).runImages(rest);
  if (command === 'sbom') return (await import('./sbom.js')).runSbom(rest);
  if (command === 'store') return (await import('./store.js')).runStore(rest);
  if (command === 'verify') return (await import('./verify.js')).runVerify(rest);
  const commandLine = Object.hasOwn(CONFIGURED, command) ? await (CONFIGURED[command] as () => Promise<CommandLine>)() : undefined;
  const options = commandLine?.options ?? (command === 'demo' ? DEMO_OPTIONS : command === 'certs' ? CERTS_OPTIONS : null);
  if (!options) {
    console.error(`driftwatch: unknown command ${JSON.stringify(command)}; one of: demo, collector, agent, certs, alerts, exceptions, baselines, nodes, images, sbom, store, verify\n\n${USAGE}`);
    return 2;
  }
  const help = commandLine?.help(command) ?? (COMMAND_HELP[command] as string);
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: rest, options, strict: true, allowPositionals: command === 'certs' }));
  } catch (err) {
    console.error(`driftwatch ${command}: ${(err as Error).message}\n\n${help}`);
    return 2;
  }
  if (values.help) {
    console.log(help);
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
    const { flags, file } = (commandLine as CommandLine).toConfig(values);
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
    // A database that does not answer at start (the message names it, without its password): no stack.
    if (err instanceof Error && err.name === 'StoreOpenError') {
      console.error(`driftwatch ${command}: ${err.message}`);
      return 1;
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
