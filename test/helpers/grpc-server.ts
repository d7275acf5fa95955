/** A grpc-js server on a unix socket in a fresh temp dir, standing in for Falco or Tetragon in tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';

/** A running (or stopped) test server that can be started again on the same socket. */
export interface UnixGrpcServer {
  /** `unix:///…/name.sock`. */
  readonly target: string;
  start(): Promise<void>;
  /** Stop at once, cutting every open stream. */
  kill(): void;
  /** Remove the temp dir. */
  cleanup(): void;
}

/** A server with `service` implemented by `impl`, listening on a socket in a temp dir. */
export function unixGrpcServer(name: string, service: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): UnixGrpcServer {
  const dir = mkdtempSync(join(tmpdir(), 'dw-grpc-'));
  const path = join(dir, `${name}.sock`);
  let server: grpc.Server | null = null;
  return {
    target: `unix://${path}`,
    start() {
      rmSync(path, { force: true });
      server = new grpc.Server();
      server.addService(service, impl);
      const s = server;
      return new Promise((resolve, reject) => s.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    },
    kill() {
      server?.forceShutdown();
      server = null;
    },
    cleanup() {
      server?.forceShutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
