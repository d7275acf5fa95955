/**
 * Each setting is declared once (runtime/flags.ts): every key of the agent's and the collector's
 * config schema has a flag that parses back to it and a line in --help that names it, or is listed
 * in --help as file-only; the defaults the help states are the schema's.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';
import { z } from 'zod';
import { AGENT_SETTINGS, AgentConfigSchema } from '../../agent/config.js';
import { COLLECTOR_SETTINGS, CollectorConfigSchema } from '../../collector/config.js';
import { parseDuration } from '../../core/duration.js';
import { defineSettings, flag, type FlagSpec } from '../../runtime/flags.js';
import { CLI } from '../helpers/processes.js';

const run = promisify(execFile);

const commands = [
  { command: 'agent', table: AGENT_SETTINGS, schema: AgentConfigSchema },
  { command: 'collector', table: COLLECTOR_SETTINGS, schema: CollectorConfigSchema },
] as const;

/** Settings whose help states the default in words rather than as the value. */
const DEFAULT_IN_WORDS = new Set(['node', 'clusterCidrs', 'kubeApiServer', 'kubeTokenFile', 'kubeCaFile']);

for (const { command, table, schema } of commands) {
  const help = table.cli.help(command);

  test(`${command}: every config key has a flag and a help line that names it, or is listed as file-only`, (t) => {
    const keys = Object.keys(schema.shape);
    t.deepEqual(Object.keys(table.settings), keys, 'the schema is the settings table');
    t.deepEqual([...table.cli.flags.values(), ...table.cli.fileOnly, ...table.cli.envOnly].sort(), [...keys].sort(), 'each key once: a flag, file-only or environment-only');
    for (const key of table.cli.envOnly) t.regex(help.slice(help.indexOf('In the environment only')), new RegExp(`^  DRIFTWATCH_[A-Z_]+ +\\S[^\\n]*(\\n {27}[^\\n]*)*\\(${key}\\)$`, 'm'), key);
    const fileSection = help.slice(help.indexOf('In the config file only'));
    t.not(fileSection, help, 'the help has a file-only section');
    for (const key of table.cli.fileOnly) t.regex(fileSection, new RegExp(`^  ${key} +\\S`, 'm'), key);
    for (const [name, key] of table.cli.flags) {
      const line = new RegExp(`^  --${name}\\b[^\\n]*(\\n {27}[^\\n]*)*\\(${key}\\)$`, 'm');
      t.regex(help, line, `--${name} (${key}) in the help`);
    }
    t.regex(help, /^ {2}--config FILE +YAML file/m);
  });

  test(`${command}: each flag parses back to its config key`, (t) => {
    for (const [name, key] of table.cli.flags) {
      const spec = table.settings[key as keyof typeof table.settings].cli as FlagSpec;
      const args = spec.arg === undefined ? [`--${name}`] : spec.repeatable ? [`--${name}`, 'a', `--${name}`, 'b'] : [`--${name}`, 'v'];
      const { values } = parseArgs({ args: [...args, '--config', '/etc/dw.yaml'], options: table.cli.options, strict: true });
      const expected = spec.arg === undefined ? true : spec.repeatable ? ['a', 'b'] : 'v';
      t.deepEqual(table.cli.toConfig(values), { flags: { [key]: expected }, file: '/etc/dw.yaml' }, `--${name}`);
      // A repeatable flag's key is a list in the environment too.
      t.is(table.cli.listKeys.includes(key), spec.repeatable === true, key);
    }
    t.throws(() => parseArgs({ args: ['--learningWindow', '1h'], options: table.cli.options, strict: true }), { message: /Unknown option/ });
  });

  test(`${command}: the defaults the help states are the schema's defaults`, (t) => {
    for (const [key, { schema: field, cli }] of Object.entries(table.settings) as [string, { schema: z.ZodType; cli: FlagSpec | { fileOnly: string } | { envOnly: string } }][]) {
      if ('fileOnly' in cli || 'envOnly' in cli) continue;
      const parsed = field.safeParse(undefined);
      const value = parsed.success ? parsed.data : undefined;
      const stated = /\bdefault ([^\s;,)]+)/.exec(cli.help)?.[1] ?? /(\S+) \((?:[^()]*, )?default[;)]/.exec(cli.help)?.[1];
      if (DEFAULT_IN_WORDS.has(key)) {
        t.truthy(/\bdefault\b/.exec(cli.help), `${key} says what its default is`);
        continue;
      }
      if (stated === undefined) {
        // Unstated only where the default is "off" or "none".
        t.true(value === undefined || value === false || value === '' || (Array.isArray(value) && value.length === 0), `${key}: the help states no default, the schema has ${JSON.stringify(value)}`);
        continue;
      }
      const expected = typeof value === 'number' && !/^\d+$/.test(stated) ? parseDuration(stated) : typeof value === 'number' ? Number(stated) : stated;
      t.is(value, expected, `${key}: the help says default ${stated}`);
    }
  });

  test(`${command}: \`driftwatch ${command} --help\` prints the generated help`, async (t) => {
    const { stdout } = await run(process.execPath, [CLI, command, '--help'], { timeout: 60_000 });
    t.is(stdout, `${help}\n`);
  });
}

test('a flag declared twice is refused at definition', (t) => {
  t.throws(() => defineSettings({ a: flag(z.string(), { flag: 'x', arg: 'X', help: 'a' }), b: flag(z.string(), { flag: 'x', arg: 'X', help: 'b' }) }), { message: /--x is declared twice/ });
  t.throws(() => defineSettings({ config: flag(z.string(), { arg: 'FILE', help: 'clash' }) }), { message: /--config/ });
});
