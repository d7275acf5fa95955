/**
 * Configuration is read once at startup, from a YAML file, then the environment, then flags (each
 * overriding the one before), validated against a schema with unknown keys rejected, and frozen.
 * A wrong value stops startup with an error naming the key and what it accepts.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../core/duration.js';
import { deepFreeze } from '../core/freeze.js';
import { parseCidr } from '../core/ip.js';
import { firstIssue } from '../core/zod-issue.js';
import { parseHostPort } from './listen.js';

/** A configuration error; `key` names the offending setting. */
export class ConfigError extends Error {
  readonly code = 'invalid_config' as const;
  constructor(readonly key: string, message: string, options?: { cause?: unknown }) {
    super(key === '' ? message : `${key}: ${message}`, options);
    this.name = 'ConfigError';
  }
}

/** A duration such as `1h30m`, parsed to milliseconds; a bare `0` (a flag or variable) is zero. */
export const durationMs = z.union([z.string(), z.number().int().nonnegative()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  // Zero needs no unit: `--cluster-sync-timeout 0` is how the README spells "do not wait".
  if (/^\s*0+\s*$/.test(v)) return 0;
  try {
    return parseDuration(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/** A boolean setting: true/false from a file or flag, "true"/"false" from the environment. */
export const boolFlag = z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);

/** HOST:PORT, kept as text and checked. */
export const hostPort = z.string().superRefine((v, ctx) => {
  try {
    parseHostPort(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

/** A CIDR block, kept as canonical text. */
export const cidr = z.string().transform((v, ctx) => {
  try {
    return parseCidr(v).text;
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/** kebab-case or SNAKE_CASE → camelCase. */
export function camelCase(name: string): string {
  return name.toLowerCase().replace(/[-_]([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** Where configuration comes from. */
export interface ConfigSources {
  /** Path of a YAML file, if given. */
  file?: string | undefined;
  /** The environment; keys `${envPrefix}NAME` are read (NAME in SNAKE_CASE). */
  env: Readonly<Record<string, string | undefined>>;
  envPrefix: string;
  /** Keys that hold lists: read from env as comma-separated values. */
  listKeys: readonly string[];
  /** Keys read from the environment only (secrets): refused in the file. */
  envOnlyKeys?: readonly string[] | undefined;
  /** Parsed flags, keyed by camelCase name; undefined means not given. */
  flags: Readonly<Record<string, unknown>>;
}

/**
 * Merge file, env and flags, validate with `schema`, and return a deep-frozen result. Unknown keys
 * in the file or flags stop startup; unknown `DRIFTWATCH_*` environment variables are ignored,
 * because the environment is shared: Kubernetes injects `DRIFTWATCH_SERVICE_HOST`,
 * `DRIFTWATCH_PORT_7070_TCP` and the like into every pod of a namespace with a Service named
 * `driftwatch`.
 */
export function loadConfig<S extends z.ZodObject>(schema: S, sources: ConfigSources): Readonly<z.output<S>> {
  const known = new Set(Object.keys(schema.shape));
  const merged: Record<string, unknown> = {};
  if (sources.file !== undefined) {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(sources.file, 'utf8'), { maxAliasCount: 100 });
    } catch (err) {
      throw new ConfigError('', `cannot read config file ${sources.file}: ${(err as Error).message}`, { cause: err });
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError('', `config file ${sources.file} must hold a mapping of settings`);
      for (const key of sources.envOnlyKeys ?? []) {
        if (Object.hasOwn(doc, key)) throw new ConfigError(key, `is read from the environment only (${sources.envPrefix}${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}), never from a file`);
      }
      Object.assign(merged, doc);
    }
  }
  for (const [name, value] of Object.entries(sources.env)) {
    if (!name.startsWith(sources.envPrefix) || value === undefined || value === '') continue;
    const key = camelCase(name.slice(sources.envPrefix.length));
    if (!known.has(key)) continue;
    merged[key] = sources.listKeys.includes(key) ? value.split(',').map((s) => s.trim()).filter(Boolean) : value;
  }
  for (const [key, value] of Object.entries(sources.flags)) {
    if (value === undefined) continue;
    if (sources.envOnlyKeys?.includes(key)) throw new ConfigError(key, 'is read from the environment only, never from a flag');
    merged[key] = value;
  }
  const result = schema.safeParse(merged);
  if (!result.success) {
    const { key, message } = firstIssue(result.error);
    throw new ConfigError(key, message);
  }
  return deepFreeze(result.data) as Readonly<z.output<S>>;
}
