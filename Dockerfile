# One image for every ats-relay process; the command picks the role (docker-compose.yml, deploy/k8s/).
# Node is the LTS line CI proves (.ci/run runs the suite on this version too).
ARG NODE_VERSION=24.22.3

# 1. build: all dependencies, TypeScript → dist/ (npm run build), nothing of it shipped but dist/.
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY . .
RUN npm run build

# 2. deps: production dependencies only (no tsx, TypeScript, vitest or testcontainers).
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts

# 3. runtime: node runs the built JavaScript under tini as PID 1, so SIGTERM reaches node (which
#    drains and commits within SHUTDOWN_TIMEOUT_MS) and zombies are reaped; npm is never PID 1.
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
# kafkajs 2.2.4 arms timers with negative delays, which Node 24 warns about once per process: a
# plain-text line on stderr beside the JSON logs. The worst of them, its request queue's 1 ms polling
# loop, is fixed in lib/kafka/kafkajs-adapter.ts (the warning no longer shows at start-up); its retry
# and connection timers can still compute one on error paths, so only that warning stays silenced.
ENV NODE_OPTIONS=--disable-warning=TimeoutNegativeWarning
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
# The image's `node` user, numeric so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "bin/ats-relay.mjs", "consume", "--help"]
