/**
 * TLS material read from files and re-read when the files change (cert-manager, a Kubernetes
 * Secret volume or `driftwatch certs` rotating them), for both ends of the agent ↔ collector stream.
 *
 * A change is detected by polling stat (mtime, size, inode) rather than fs.watch: Kubernetes swaps
 * a Secret volume's `..data` symlink atomically, which inotify on the file itself does not report.
 * A new set is published only when it is complete and consistent (every PEM parses, the key
 * belongs to the certificate); otherwise the last good set stays in use and the error is logged,
 * so a half-written rotation never takes the collector or an agent offline.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { readFileSync, statSync } from 'node:fs';
import type { experimental } from '@grpc/grpc-js';
import type { Logger } from './logger.js';

/** Where the PEM files are. `cert` and `key` go together; `ca` verifies the other end. */
export interface TlsFiles {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/** One consistent set of PEM buffers. */
export interface TlsMaterial {
  ca: Buffer | null;
  cert: Buffer | null;
  key: Buffer | null;
  /** The certificate (leaf), parsed, when there is one. */
  leaf: X509Certificate | null;
}

/** A reloading source of TLS material; also a grpc-js CertificateProvider for server credentials. */
export interface ReloadingTls extends experimental.CertificateProvider {
  /** The current (last good) material. */
  current(): TlsMaterial;
  /** Bumped on every published change. */
  readonly generation: number;
  /** Re-check the files now; true when new material was published. */
  refresh(): boolean;
  /** Stop polling. */
  close(): void;
}

/** The largest PEM file read (a chain of a few certificates is a few KiB). */
const MAX_PEM_BYTES = 256 << 10;

/** A TLS file set that cannot be used; `file` names the culprit when known. */
export class TlsFilesError extends Error {
  readonly code = 'tls_files_invalid' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TlsFilesError';
  }
}

function readPem(path: string): Buffer {
  const size = statSync(path).size;
  if (size > MAX_PEM_BYTES) throw new TlsFilesError(`${path} is ${size} bytes; a PEM file is at most ${MAX_PEM_BYTES}`);
  return readFileSync(path);
}

/** Read and check a set of files; throws TlsFilesError saying which file is wrong and why. */
export function readTlsMaterial(files: TlsFiles): TlsMaterial {
  if ((files.cert === undefined) !== (files.key === undefined)) throw new TlsFilesError('a certificate and its key go together: give both or neither');
  const load = (path: string | undefined, what: string): Buffer | null => {
    if (path === undefined) return null;
    try {
      return readPem(path);
    } catch (err) {
      if (err instanceof TlsFilesError) throw err;
      throw new TlsFilesError(`cannot read the ${what} ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const ca = load(files.ca, 'CA certificate');
  const cert = load(files.cert, 'certificate');
  const key = load(files.key, 'private key');
  let leaf: X509Certificate | null = null;
  try {
    if (ca) new X509Certificate(ca);
  } catch (err) {
    throw new TlsFilesError(`${files.ca} is not a PEM certificate: ${(err as Error).message}`, { cause: err });
  }
  if (cert && key) {
    try {
      leaf = new X509Certificate(cert);
    } catch (err) {
      throw new TlsFilesError(`${files.cert} is not a PEM certificate: ${(err as Error).message}`, { cause: err });
    }
    let privateKey;
    try {
      privateKey = createPrivateKey(key);
    } catch (err) {
      throw new TlsFilesError(`${files.key} is not a PEM private key: ${(err as Error).message}`, { cause: err });
    }
    if (!leaf.checkPrivateKey(privateKey)) throw new TlsFilesError(`${files.key} is not the key of ${files.cert} (a rotation half done?)`);
    try {
      // What the TLS stack will do with it: a chain it cannot use fails here, not on the next handshake.
      createSecureContext({ cert, key, ...(ca ? { ca } : {}) });
    } catch (err) {
      throw new TlsFilesError(`${files.cert}: ${(err as Error).message}`, { cause: err });
    }
  }
  return { ca, cert, key, leaf };
}

function stamp(files: TlsFiles): string {
  return [files.ca, files.cert, files.key]
    .map((p) => {
      if (p === undefined) return '-';
      try {
        const s = statSync(p);
        return `${s.ino}:${s.size}:${s.mtimeMs}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}

/**
 * Load `files` now (throws TlsFilesError when they are unusable: startup should stop) and re-check
 * them every `intervalMs` (0: only when refresh() is called). `onReload` sees every outcome.
 */
export function createReloadingTls(
  files: TlsFiles,
  options: { intervalMs: number; logger: Logger; onReload?: (result: 'ok' | 'error') => void },
): ReloadingTls {
  const { logger } = options;
  let material = readTlsMaterial(files);
  let lastStamp = stamp(files);
  let generation = 1;
  const caListeners = new Set<experimental.CaCertificateUpdateListener>();
  const identityListeners = new Set<experimental.IdentityCertificateUpdateListener>();

  const publish = () => {
    const ca = material.ca ? { caCertificate: material.ca } : null;
    const identity = material.cert && material.key ? { certificate: material.cert, privateKey: material.key } : null;
    for (const l of caListeners) l(ca);
    for (const l of identityListeners) l(identity);
  };

  function refresh(): boolean {
    const now = stamp(files);
    if (now === lastStamp) return false;
    lastStamp = now;
    try {
      material = readTlsMaterial(files);
    } catch (err) {
      // Keep serving with the last good set; the next change of the files is tried again.
      logger.error({ err: (err as Error).message }, 'TLS files changed but cannot be used; keeping the previous certificates');
      options.onReload?.('error');
      return false;
    }
    generation++;
    logger.info({ subject: material.leaf?.subject, validTo: material.leaf?.validTo, fingerprint: material.leaf?.fingerprint256 }, 'TLS certificates reloaded');
    options.onReload?.('ok');
    publish();
    return true;
  }

  const timer = options.intervalMs > 0 ? setInterval(refresh, options.intervalMs) : null;
  timer?.unref();

  return {
    current: () => material,
    get generation() {
      return generation;
    },
    refresh,
    close() {
      if (timer) clearInterval(timer);
    },
    addCaCertificateListener(l) {
      caListeners.add(l);
      process.nextTick(l, material.ca ? { caCertificate: material.ca } : null);
    },
    removeCaCertificateListener(l) {
      caListeners.delete(l);
    },
    addIdentityCertificateListener(l) {
      identityListeners.add(l);
      process.nextTick(l, material.cert && material.key ? { certificate: material.cert, privateKey: material.key } : null);
    },
    removeIdentityCertificateListener(l) {
      identityListeners.delete(l);
    },
  };
}
