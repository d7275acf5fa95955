/**
 * `driftwatch certs`: a small CA for small setups (a lab, a single cluster without cert-manager).
 *
 *   certs init --dir DIR [--name HOST ...]   a CA, and a certificate for the collector
 *   certs collector --dir DIR [--name HOST ...]  a new collector certificate (rotation)
 *   certs node NAME [NAME ...] --dir DIR     a client certificate per node (CN = node name)
 *
 * Keys are ECDSA P-256 made by Node's own WebCrypto (OpenSSL inside Node); the certificates are
 * encoded by @peculiar/x509, because Node can parse X.509 but not write it. It is loaded only here,
 * so the agent and the collector never carry it (nor the reflect-metadata polyfill it needs).
 * Files are written to a temporary name and renamed, keys with mode 0600, so a process re-reading
 * them never sees half a file.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

/** Names the collector certificate covers unless told otherwise. */
export const DEFAULT_COLLECTOR_NAMES = ['localhost', '127.0.0.1', '::1', 'driftwatch-collector', 'driftwatch-collector.driftwatch.svc', 'driftwatch-collector.driftwatch.svc.cluster.local'];

const NODE_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const DAY = 86_400_000;
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

type X509 = typeof import('@peculiar/x509');

async function x509(): Promise<X509> {
  await import('reflect-metadata');
  const lib = await import('@peculiar/x509');
  lib.cryptoProvider.set(webcrypto as unknown as Parameters<typeof lib.cryptoProvider.set>[0]);
  return lib;
}

function writeAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, text, { mode, flag: 'wx' });
  renameSync(tmp, path);
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f; // positive
  return b.toString('hex');
}

interface Issuer {
  cert: InstanceType<X509['X509Certificate']>;
  key: CryptoKey;
}

async function loadIssuer(lib: X509, dir: string): Promise<Issuer> {
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  if (!existsSync(certFile) || !existsSync(keyFile)) throw new Error(`no CA in ${dir} (run \`driftwatch certs init --dir ${dir}\` first)`);
  const cert = new lib.X509Certificate(readFileSync(certFile, 'utf8'));
  const der = lib.PemConverter.decodeFirst(readFileSync(keyFile, 'utf8'));
  const key = await webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  return { cert, key: key as CryptoKey };
}

async function issue(lib: X509, issuer: Issuer, options: { cn: string; days: number; usage: 'server' | 'client'; names: string[] }): Promise<{ cert: string; key: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await lib.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: new lib.Name([{ CN: [options.cn] }]).toString(),
    issuer: issuer.cert.subject,
    notBefore: new Date(now - 5 * 60_000),
    notAfter: new Date(now + options.days * DAY),
    signingKey: issuer.key,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new lib.BasicConstraintsExtension(false, undefined, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.digitalSignature | lib.KeyUsageFlags.keyEncipherment, true),
      new lib.ExtendedKeyUsageExtension([options.usage === 'server' ? lib.ExtendedKeyUsage.serverAuth : lib.ExtendedKeyUsage.clientAuth], false),
      new lib.SubjectAlternativeNameExtension(options.names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }))),
      await lib.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await lib.AuthorityKeyIdentifierExtension.create(issuer.cert),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

/** Make a CA (refuses to replace one) and a collector certificate in `dir`; returns the files written. */
export async function certsInit(dir: string, options: { names?: string[]; days?: number; caDays?: number } = {}): Promise<string[]> {
  const lib = await x509();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (existsSync(join(dir, 'ca.key'))) throw new Error(`${join(dir, 'ca.key')} exists; a CA is never replaced (remove it yourself to start over)`);
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const ca = await lib.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Driftwatch CA ${randomBytes(3).toString('hex')}`,
    notBefore: new Date(now - 5 * 60_000),
    notAfter: new Date(now + (options.caDays ?? 3650) * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new lib.BasicConstraintsExtension(true, 0, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.keyCertSign | lib.KeyUsageFlags.cRLSign, true),
      await lib.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  writeAtomic(join(dir, 'ca.key'), pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), 0o600);
  writeAtomic(join(dir, 'ca.crt'), ca.toString('pem') + '\n', 0o644);
  return ['ca.crt', 'ca.key', ...(await certsCollector(dir, options))];
}

/** Make (or replace) the collector's certificate in `dir`. */
export async function certsCollector(dir: string, options: { names?: string[]; days?: number } = {}): Promise<string[]> {
  const lib = await x509();
  const names = options.names && options.names.length > 0 ? options.names : DEFAULT_COLLECTOR_NAMES;
  for (const n of names) if (!isIP(n) && !/^[A-Za-z0-9*]([-A-Za-z0-9.]{0,251}[A-Za-z0-9])?$/.test(n)) throw new Error(`--name ${JSON.stringify(n)} is not a DNS name or IP address`);
  const { cert, key } = await issue(lib, await loadIssuer(lib, dir), { cn: names[0] as string, days: options.days ?? 365, usage: 'server', names });
  // Key first: until the certificate follows, a reloading collector sees a mismatch and keeps the old pair.
  writeAtomic(join(dir, 'collector.key'), key, 0o600);
  writeAtomic(join(dir, 'collector.crt'), cert, 0o644);
  return ['collector.crt', 'collector.key'];
}

/** Make (or replace) a client certificate for each node: `node-NAME.crt` / `node-NAME.key`, CN=NAME. */
export async function certsNode(dir: string, nodes: string[], options: { days?: number } = {}): Promise<string[]> {
  const lib = await x509();
  if (nodes.length === 0) throw new Error('name at least one node');
  for (const n of nodes) if (!NODE_RE.test(n)) throw new Error(`${JSON.stringify(n)} is not a Kubernetes node name`);
  const issuer = await loadIssuer(lib, dir);
  const written: string[] = [];
  for (const node of nodes) {
    const { cert, key } = await issue(lib, issuer, { cn: node, days: options.days ?? 365, usage: 'client', names: [node] });
    writeAtomic(join(dir, `node-${node}.key`), key, 0o600);
    writeAtomic(join(dir, `node-${node}.crt`), cert, 0o644);
    written.push(`node-${node}.crt`, `node-${node}.key`);
  }
  return written;
}
