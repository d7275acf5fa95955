/**
 * Loads the subsets of third-party protos that Driftwatch's sources speak (Falco's outputs API,
 * Tetragon's event stream, the CRI's RuntimeService), once each. Field names keep their snake_case, so a decoded message has
 * the same keys as the JSON those tools export (Tetragon writes protojson with proto names, Falco's
 * output_fields are the JSON ones): one converter per tool serves both transports.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url));

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  // uint64s (socket cookies) as strings, the way protojson writes them; never lossy.
  longs: String,
  enums: String,
  // Absent fields stay absent, as in the JSON export: the converters treat them as unknown.
  defaults: false,
  arrays: true,
  objects: false,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

/** A service's client constructor and definition (the definition is what a test server adds). */
export interface LoadedService {
  Client: grpc.ServiceClientConstructor;
  service: grpc.ServiceDefinition;
}

let falco: LoadedService | undefined;
let tetragon: LoadedService | undefined;
let cri: LoadedService | undefined;

/** `falco.outputs.service` (methods `sub`, `get`). */
export function falcoOutputsService(): LoadedService {
  if (!falco) {
    const def = protoLoader.loadSync('falco/outputs.proto', LOADER_OPTIONS);
    const root = grpc.loadPackageDefinition(def) as unknown as { falco: { outputs: { service: grpc.ServiceClientConstructor } } };
    const Client = root.falco.outputs.service;
    falco = { Client, service: Client.service };
  }
  return falco;
}

/** `tetragon.FineGuidanceSensors` (method `GetEvents`). */
export function tetragonSensorsService(): LoadedService {
  if (!tetragon) {
    const def = protoLoader.loadSync('tetragon/sensors.proto', LOADER_OPTIONS);
    const root = grpc.loadPackageDefinition(def) as unknown as { tetragon: { FineGuidanceSensors: grpc.ServiceClientConstructor } };
    const Client = root.tetragon.FineGuidanceSensors;
    tetragon = { Client, service: Client.service };
  }
  return tetragon;
}

/** `runtime.v1.RuntimeService` (methods `ContainerStatus`, `ListContainers`, `PodSandboxStatus`). */
export function criRuntimeService(): LoadedService {
  if (!cri) {
    const def = protoLoader.loadSync('cri/api.proto', LOADER_OPTIONS);
    const root = grpc.loadPackageDefinition(def) as unknown as { runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } } };
    const Client = root.runtime.v1.RuntimeService;
    cri = { Client, service: Client.service };
  }
  return cri;
}
