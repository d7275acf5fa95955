/**
 * Every setting is declared once: its schema, its command-line flag and its help line. From that
 * one table come the config schema's shape, node:util parseArgs' options, `--help`, the mapping of
 * parsed flags back to config keys, and the keys the environment gives as comma-separated lists.
 * A setting that is a structure no flag can spell (routes, overrides) is declared file-only, and
 * `--help` lists it as such, so no key is ever left out of the help. A secret that must not be on a
 * command line (where `ps` shows it to everyone) nor in a config file is declared environment-only.
 */
import type { ParseArgsConfig } from 'node:util';
import type { z } from 'zod';

/** How a setting is given on the command line. */
export interface FlagSpec {
  /** The flag after `--`; default: the key in kebab-case. A repeatable flag is named in the singular (--source for sources). */
  readonly flag?: string;
  /** Placeholder of the value in `--help` (FILE, DUR, N); a flag without one is a switch (--insecure). */
  readonly arg?: string;
  /** The flag may be given several times; the setting is a list (comma-separated in the environment). */
  readonly repeatable?: boolean;
  /** What it does and its default, for `--help`; `\n` continues on an indented line. */
  readonly help: string;
}

/** One setting: its schema, and its flag or (file-only) the help line of the config file key. */
export interface Setting<S extends z.ZodType = z.ZodType> {
  readonly schema: S;
  readonly cli: FlagSpec | { readonly fileOnly: string } | { readonly envOnly: string; readonly variable: string };
}

/** A setting given by file, environment or flag. */
export function flag<S extends z.ZodType>(schema: S, spec: FlagSpec): Setting<S> {
  return { schema, cli: spec };
}

/** A setting given only in the config file: a structure no flag can spell. */
export function fileOnly<S extends z.ZodType>(schema: S, help: string): Setting<S> {
  return { schema, cli: { fileOnly: help } };
}

/**
 * A setting given only by the environment variable `variable` (which loadConfig derives from the
 * key: dbUrl → DRIFTWATCH_DB_URL): a secret, never a flag, refused in the config file.
 */
export function envOnly<S extends z.ZodType>(schema: S, variable: string, help: string): Setting<S> {
  return { schema, cli: { envOnly: help, variable } };
}

type ParseArgsOptions = NonNullable<ParseArgsConfig['options']>;

/** What a command line is built from the settings. */
export interface CommandLine {
  /** node:util parseArgs options: every flag, plus --config FILE and -h/--help. */
  readonly options: ParseArgsOptions;
  /** Each flag (without `--`) and the config key it sets. */
  readonly flags: ReadonlyMap<string, string>;
  /** The keys given only in the config file. */
  readonly fileOnly: readonly string[];
  /** The keys given only by the environment. */
  readonly envOnly: readonly string[];
  /** Keys that hold lists: repeatable flags, comma-separated in the environment. */
  readonly listKeys: readonly string[];
  /** The `driftwatch <command> --help` text. */
  help(command: string): string;
  /** Parsed flag values (kebab-case) to config keys, and the --config file. */
  toConfig(values: Readonly<Record<string, unknown>>): { flags: Record<string, unknown>; file: string | undefined };
}

/** A key in kebab-case: maxSpoolBytes → max-spool-bytes. */
export function kebabCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Help column: flags are padded to it, continuation lines start at it. */
const HELP_COLUMN = 25;

function helpLine(label: string, text: string): string {
  const head = label.length < HELP_COLUMN - 1 ? label.padEnd(HELP_COLUMN) : `${label}  `;
  return `  ${head}${text.split('\n').join(`\n  ${' '.repeat(HELP_COLUMN)}`)}`;
}

/** The shape (for z.strictObject) and the command line of a table of settings, which comes back as declared; keys keep their order. */
export function defineSettings<T extends Record<string, Setting>>(settings: T): { settings: T; shape: { [K in keyof T]: T[K]['schema'] }; cli: CommandLine } {
  const shape = {} as { [K in keyof T]: T[K]['schema'] };
  const options: ParseArgsOptions = { config: { type: 'string' } };
  const flags = new Map<string, string>();
  const fileOnlyKeys: string[] = [];
  const listKeys: string[] = [];
  const lines: string[] = [];
  const fileLines: string[] = [];
  const envOnlyKeys: string[] = [];
  const envLines: string[] = [];
  for (const [key, { schema, cli }] of Object.entries(settings) as [keyof T & string, Setting][]) {
    shape[key] = schema as T[typeof key]['schema'];
    if ('fileOnly' in cli) {
      fileOnlyKeys.push(key);
      fileLines.push(helpLine(key, cli.fileOnly));
      continue;
    }
    if ('envOnly' in cli) {
      envOnlyKeys.push(key);
      envLines.push(helpLine(cli.variable, `${cli.envOnly} (${key})`));
      continue;
    }
    const name = cli.flag ?? kebabCase(key);
    if (name === 'config' || name === 'help' || flags.has(name)) throw new Error(`the flag --${name} is declared twice`);
    flags.set(name, key);
    options[name] = cli.arg === undefined ? { type: 'boolean' } : cli.repeatable ? { type: 'string', multiple: true } : { type: 'string' };
    if (cli.repeatable) listKeys.push(key);
    lines.push(helpLine(`--${name}${cli.arg === undefined ? '' : ` ${cli.arg}`}`, `${cli.help}${cli.repeatable ? '; repeatable' : ''} (${key})`));
  }
  options.help = { type: 'boolean', short: 'h' };
  lines.push(helpLine('--config FILE', 'YAML file with the settings above'));
  return {
    settings,
    shape,
    cli: {
      options,
      flags,
      fileOnly: fileOnlyKeys,
      envOnly: envOnlyKeys,
      listKeys,
      help: (command) =>
        [
          `driftwatch ${command} — flags (config key in parentheses):`,
          ...lines,
          ...(fileLines.length > 0 ? ['In the config file only (key and what it holds):', ...fileLines] : []),
          ...(envLines.length > 0 ? ['In the environment only (variable and what it holds):', ...envLines] : []),
        ].join('\n'),
      toConfig(values) {
        const out: Record<string, unknown> = {};
        for (const [name, value] of Object.entries(values)) {
          const key = flags.get(name);
          if (key !== undefined) out[key] = value;
        }
        return { flags: out, file: values.config as string | undefined };
      },
    },
  };
}
