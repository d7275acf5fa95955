# syntax=docker/dockerfile:1
# Driftwatch: one image for the collector and the agent (falco and tetragon overlays), and an
# `agent` variant that adds bpftrace for the built-in eBPF source.
#
#   docker build -t ghcr.io/driftwatch/driftwatch:0.1.0 .
#   docker build --target agent -t ghcr.io/driftwatch/driftwatch:0.1.0-agent .
#
# The build stage runs the project's own build (`npm run build`, the tsc that `npm test` runs);
# test/daemonset/dockerfile.test.ts checks these steps against package.json and tsconfig.json.
# Every RUN is in exec form: no shell.

FROM node:20-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Lifecycle scripts are off for the install (prepare would compile before the sources are
# here); better-sqlite3's native build is the one script the project allows (allowScripts).
RUN ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
RUN ["npm", "rebuild", "better-sqlite3"]
COPY tsconfig.json ./
COPY core ./core
COPY runtime ./runtime
COPY agent ./agent
COPY collector ./collector
COPY proto ./proto
COPY cli ./cli
COPY fixtures ./fixtures
COPY test ./test
COPY bench ./bench
COPY daemonset ./daemonset
RUN ["npm", "run", "build"]
RUN ["npm", "prune", "--omit=dev", "--no-audit", "--no-fund"]

FROM node:20-bookworm-slim AS runtime-base
LABEL org.opencontainers.image.title="driftwatch" \
      org.opencontainers.image.description="Runtime baselining for Kubernetes: learn what each container image does, alert on-call when it does something new." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/proto ./proto
COPY --from=build /src/dist/core ./dist/core
COPY --from=build /src/dist/runtime ./dist/runtime
COPY --from=build /src/dist/agent ./dist/agent
COPY --from=build /src/dist/collector ./dist/collector
COPY --from=build /src/dist/proto ./dist/proto
COPY --from=build /src/dist/cli ./dist/cli
COPY --from=build /src/fixtures/falco/demo.jsonl ./fixtures/falco/demo.jsonl
# Not a user of the base image (node is 1000): a numeric id nothing else on a node runs as.
USER 65532:65532
ENTRYPOINT ["node", "/app/dist/cli/driftwatch.js"]
CMD ["--help"]

# The agent with the built-in eBPF source: bpftrace from Debian. Kubernetes runs it as root
# with CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE only (daemonset/overlays/ebpf).
FROM runtime-base AS agent
USER 0:0
RUN ["apt-get", "update"]
RUN ["apt-get", "install", "-y", "--no-install-recommends", "bpftrace"]
RUN ["rm", "-rf", "/var/lib/apt/lists"]
USER 65532:65532

# The default target: collector, and agent for the falco and tetragon sources.
FROM runtime-base AS runtime
