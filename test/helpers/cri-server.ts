/** A fake container runtime: runtime.v1.RuntimeService on a unix socket, answering like containerd does. */
import * as grpc from '@grpc/grpc-js';
import { criRuntimeService } from '../../proto/third-party.js';
import { unixGrpcServer, type UnixGrpcServer } from './grpc-server.js';

/** One container the fake runtime knows. */
export interface FakeContainer {
  id: string;
  sandbox: string;
  name: string;
  /** What containerd reports in ContainerStatus.image.image (a repository:tag). */
  image: string;
  /** repo@sha256:… */
  imageRef: string;
  pod: { name: string; namespace: string; uid: string; labels: Record<string, string> };
  /** Its state (default CONTAINER_RUNNING); ListContainers' state filter selects by it. */
  state?: 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';
}

/** The server, the containers it answers for, and how often each call was made. */
export interface FakeCri extends UnixGrpcServer {
  containers: Map<string, FakeContainer>;
  calls: { ContainerStatus: number; ListContainers: number; PodSandboxStatus: number };
}

const notFound = (what: string) => Object.assign(new Error(`${what} not found`), { code: grpc.status.NOT_FOUND });

/** Start a fake CRI server for `containers`. */
export async function startFakeCri(containers: FakeContainer[]): Promise<FakeCri> {
  const known = new Map(containers.map((c) => [c.id, c]));
  const calls = { ContainerStatus: 0, ListContainers: 0, PodSandboxStatus: 0 };
  const kubeletLabels = (c: FakeContainer) => ({
    'io.kubernetes.container.name': c.name,
    'io.kubernetes.pod.name': c.pod.name,
    'io.kubernetes.pod.namespace': c.pod.namespace,
    'io.kubernetes.pod.uid': c.pod.uid,
  });
  const server = unixGrpcServer('containerd', criRuntimeService().service, {
    ContainerStatus(call: grpc.ServerUnaryCall<{ container_id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      calls.ContainerStatus++;
      const c = known.get(call.request.container_id);
      if (!c) return cb(notFound(`container "${call.request.container_id}"`));
      cb(null, {
        status: {
          id: c.id,
          metadata: { name: c.name, attempt: 0 },
          state: 'CONTAINER_RUNNING',
          created_at: '1700000000000000000',
          // containerd: image.image is the repo:tag it resolved; image_ref the repo digest.
          image: { image: c.image, annotations: {} },
          image_ref: c.imageRef,
          labels: kubeletLabels(c),
          annotations: { 'io.kubernetes.container.restartCount': '0' },
        },
        info: {},
      });
    },
    ListContainers(call: grpc.ServerUnaryCall<{ filter?: { id?: string; state?: { state: string } | null } }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      calls.ListContainers++;
      const id = call.request.filter?.id ?? '';
      const state = call.request.filter?.state?.state;
      const list = [...known.values()].filter((c) => (id === '' || c.id === id) && (state === undefined || state === (c.state ?? 'CONTAINER_RUNNING')));
      // The kubelet passes the image id, so ListContainers' image is sha256:…, not a name.
      cb(null, { containers: list.map((c) => ({ id: c.id, pod_sandbox_id: c.sandbox, metadata: { name: c.name }, image: { image: `sha256:${'0'.repeat(64)}` }, image_ref: c.imageRef, state: c.state ?? 'CONTAINER_RUNNING', labels: kubeletLabels(c) })) });
    },
    PodSandboxStatus(call: grpc.ServerUnaryCall<{ pod_sandbox_id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      calls.PodSandboxStatus++;
      const c = [...known.values()].find((x) => x.sandbox === call.request.pod_sandbox_id);
      if (!c) return cb(notFound('sandbox'));
      cb(null, {
        status: {
          id: c.sandbox,
          metadata: { name: c.pod.name, uid: c.pod.uid, namespace: c.pod.namespace, attempt: 0 },
          state: 'SANDBOX_READY',
          labels: { ...c.pod.labels, 'io.kubernetes.pod.name': c.pod.name, 'io.kubernetes.pod.namespace': c.pod.namespace, 'io.kubernetes.pod.uid': c.pod.uid },
        },
      });
    },
  });
  await server.start();
  return Object.assign(server, { containers: known, calls });
}
