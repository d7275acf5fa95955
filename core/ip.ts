/**
 * IP address parsing and CIDR matching without I/O or allocation-heavy libraries: the agent
 * classifies a peer address on every network event, so this sits on the hot path.
 */

/** A parsed address: IPv4 as 4 bytes, IPv6 as 16 bytes. IPv4-mapped IPv6 is returned as IPv4. */
export interface ParsedIp {
  version: 4 | 6;
  bytes: Uint8Array;
}

/** A parsed CIDR block. */
export interface Cidr {
  version: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
  /** The text it was parsed from, canonical. */
  text: string;
}

/** Parse a dotted-quad IPv4 address; null when it is not one. */
export function parseIPv4(text: string): Uint8Array | null {
  const out = new Uint8Array(4);
  let part = 0;
  let value = -1;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      // No leading zeros beyond a lone 0 (they would be octal to some parsers).
      if (digits > 0 && value === 0) return null;
      value = (value < 0 ? 0 : value) * 10 + (c - 48);
      if (value > 255 || ++digits > 3) return null;
    } else if (c === 46) {
      if (value < 0 || part === 3) return null;
      out[part++] = value;
      value = -1;
      digits = 0;
    } else {
      return null;
    }
  }
  if (part !== 3 || value < 0) return null;
  out[3] = value;
  return out;
}

/** Parse an IPv6 address (with optional zone, `%eth0`, ignored); null when it is not one. */
export function parseIPv6(text: string): Uint8Array | null {
  let s = text;
  const zone = s.indexOf('%');
  if (zone !== -1) s = s.slice(0, zone);
  if (s.length < 2 || s.length > 45 || !s.includes(':')) return null;
  const out = new Uint8Array(16);
  const dbl = s.indexOf('::');
  if (dbl !== -1 && s.indexOf('::', dbl + 1) !== -1) return null;
  const head = dbl === -1 ? s : s.slice(0, dbl);
  const tail = dbl === -1 ? '' : s.slice(dbl + 2);
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === '' ? [] : tail.split(':');
  const words: number[] = [];
  const tailWords: number[] = [];
  const parseGroups = (groups: string[], into: number[], allowV4Last: boolean): boolean => {
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i] as string;
      if (allowV4Last && i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        if (!v4) return false;
        into.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
        continue;
      }
      if (g.length === 0 || g.length > 4) return false;
      let w = 0;
      for (let j = 0; j < g.length; j++) {
        const c = g.charCodeAt(j);
        let d: number;
        if (c >= 48 && c <= 57) d = c - 48;
        else if (c >= 97 && c <= 102) d = c - 87;
        else if (c >= 65 && c <= 70) d = c - 55;
        else return false;
        w = (w << 4) | d;
      }
      into.push(w);
    }
    return true;
  };
  if (!parseGroups(headGroups, words, dbl === -1)) return null;
  if (!parseGroups(tailGroups, tailWords, true)) return null;
  if (dbl === -1) {
    if (words.length !== 8) return null;
  } else if (words.length + tailWords.length > 7) {
    return null;
  }
  const all = dbl === -1 ? words : [...words, ...new Array<number>(8 - words.length - tailWords.length).fill(0), ...tailWords];
  for (let i = 0; i < 8; i++) {
    const w = all[i] as number;
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  }
  return out;
}

/** Parse either family; IPv4-mapped IPv6 (`::ffff:10.0.0.1`) becomes IPv4. */
export function parseIp(text: string): ParsedIp | null {
  const v4 = parseIPv4(text);
  if (v4) return { version: 4, bytes: v4 };
  const v6 = parseIPv6(text);
  if (!v6) return null;
  let mapped = v6[10] === 0xff && v6[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (v6[i] !== 0) mapped = false;
  if (mapped) return { version: 4, bytes: v6.slice(12) };
  return { version: 6, bytes: v6 };
}

/** Canonical text of an address: dotted quad, or RFC 5952 IPv6 (lower case, longest zero run compressed). */
export function formatIp(ip: ParsedIp): string {
  const b = ip.bytes;
  if (ip.version === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(((b[i * 2] as number) << 8) | (b[i * 2 + 1] as number));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (w: number) => w.toString(16);
  if (bestStart === -1) return words.map(hex).join(':');
  const left = words.slice(0, bestStart).map(hex).join(':');
  const right = words.slice(bestStart + bestLen).map(hex).join(':');
  return `${left}::${right}`;
}

/** Parse `a.b.c.d/n` or `x::/n`; throws a RangeError naming the text when invalid. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addr = slash === -1 ? text : text.slice(0, slash);
  const ip = parseIp(addr.trim());
  if (!ip) throw new RangeError(`not an IP address: ${JSON.stringify(text)}`);
  const max = ip.version === 4 ? 32 : 128;
  const prefix = slash === -1 ? max : Number(text.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) {
    throw new RangeError(`bad prefix length in ${JSON.stringify(text)} (0..${max})`);
  }
  const bytes = ip.bytes.slice();
  for (let bit = prefix; bit < max; bit++) bytes[bit >> 3] = (bytes[bit >> 3] as number) & ~(0x80 >> (bit & 7));
  return { version: ip.version, bytes, prefix, text: `${formatIp({ version: ip.version, bytes })}/${prefix}` };
}

/** True when `ip` lies inside `cidr`. */
export function cidrContains(cidr: Cidr, ip: ParsedIp): boolean {
  if (cidr.version !== ip.version) return false;
  const full = cidr.prefix >> 3;
  for (let i = 0; i < full; i++) if (cidr.bytes[i] !== ip.bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((ip.bytes[full] as number) & mask) === cidr.bytes[full];
}

/** Address classes that never name a specific peer. */
export type AddressClass = 'loopback' | 'any' | 'link-local' | 'public';

/** Classify an address into the classes every network has, independent of the cluster's ranges. */
export function classifyAddress(ip: ParsedIp): AddressClass {
  const b = ip.bytes;
  if (ip.version === 4) {
    if (b[0] === 127) return 'loopback';
    if (b[0] === 0 && b[1] === 0 && b[2] === 0 && b[3] === 0) return 'any';
    if (b[0] === 169 && b[1] === 254) return 'link-local';
    return 'public';
  }
  let zeroTo15 = true;
  for (let i = 0; i < 15; i++) if (b[i] !== 0) zeroTo15 = false;
  if (zeroTo15 && b[15] === 1) return 'loopback';
  if (zeroTo15 && b[15] === 0) return 'any';
  if (b[0] === 0xfe && ((b[1] as number) & 0xc0) === 0x80) return 'link-local';
  return 'public';
}

/**
 * The smallest CIDR block holding every address of `ips` (all of one version), but never wider than
 * `/minPrefix`: null when they do not fit in one such block.
 */
export function coveringCidr(ips: readonly ParsedIp[], minPrefix: number): Cidr | null {
  const first = ips[0];
  if (!first) return null;
  const max = first.version === 4 ? 32 : 128;
  let prefix = max;
  for (const ip of ips) {
    if (ip.version !== first.version) return null;
    for (let bit = 0; bit < prefix; bit++) {
      const mask = 0x80 >> (bit & 7);
      if (((ip.bytes[bit >> 3] as number) & mask) !== ((first.bytes[bit >> 3] as number) & mask)) {
        prefix = bit;
        break;
      }
    }
  }
  if (prefix < minPrefix) return null;
  return parseCidr(`${formatIp(first)}/${prefix}`);
}

/**
 * The agent's in-cluster ranges unless configured (--cluster-cidr): RFC 1918, CGNAT, ULA. A
 * `cluster` peer in a baseline stands for them.
 */
export const DEFAULT_CLUSTER_CIDRS: readonly string[] = Object.freeze(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7']);

/**
 * Ranges whose addresses are not globally routable (RFC 6890 and successors): private, shared
 * (CGNAT), loopback, link-local, multicast, reserved, "this network", benchmarking, unique local.
 * The documentation ranges (TEST-NET, 2001:db8::/32) are left out on purpose: examples and test
 * fixtures use them to stand for public peers. What a class entry ("any public peer") excludes.
 */
export const NON_GLOBAL_RANGES: Readonly<Record<4 | 6, readonly string[]>> = Object.freeze({
  4: Object.freeze(['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24', '192.168.0.0/16', '198.18.0.0/15', '224.0.0.0/4', '240.0.0.0/4']),
  6: Object.freeze(['::/127', '64:ff9b:1::/48', '100::/64', 'fc00::/7', 'fe80::/10', 'ff00::/8']),
});

const nonGlobal = { 4: NON_GLOBAL_RANGES[4].map(parseCidr), 6: NON_GLOBAL_RANGES[6].map(parseCidr) };

/** True when `ip` is globally routable: outside every range of NON_GLOBAL_RANGES. */
export function isGlobalAddress(ip: ParsedIp): boolean {
  for (const range of nonGlobal[ip.version]) if (cidrContains(range, ip)) return false;
  return true;
}

/** The prefix of `ip` of `length` bits, as text (`52.216.0.0/16`): what groups addresses into networks. */
export function prefixOf(ip: ParsedIp, length: number): string {
  const max = ip.version === 4 ? 32 : 128;
  const bits = Math.max(0, Math.min(length, max));
  const bytes = ip.bytes.slice();
  for (let bit = bits; bit < max; bit++) bytes[bit >> 3] = (bytes[bit >> 3] as number) & ~(0x80 >> (bit & 7));
  return `${formatIp({ version: ip.version, bytes })}/${bits}`;
}
