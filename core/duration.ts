/** Durations as people write them in flags and config: `90s`, `10m`, `1h30m`, `2d`, `500ms`. */

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parse a duration into milliseconds; throws a RangeError saying what is accepted. */
export function parseDuration(text: string): number {
  const s = text.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) break;
    total += Number(m[1]) * (UNITS[m[2] as string] as number);
    pos = re.lastIndex;
  }
  if (s.length === 0 || pos !== s.length || !Number.isFinite(total)) {
    throw new RangeError(`not a duration: ${JSON.stringify(text)} (use e.g. 30s, 10m, 1h30m, 2d)`);
  }
  return Math.round(total);
}

/** Render milliseconds the way parseDuration reads them, largest units first (`1h30m`). */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000], ['ms', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
