# syntax=docker/dockerfile:1
# The kong-grip sidecar. Build from the repository root: docker build -f docker/sidecar.Dockerfile .

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY sidecar/src ./sidecar/src
RUN npx tsc -p tsconfig.build.json

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts
COPY --from=build /src/sidecar/dist ./sidecar/dist
USER node
# 7999: client traffic from Kong (handoff required in Kong mode). 5561: publish API, /metrics, /healthz, /readyz.
# Healthy = /readyz: NATS connected and not draining (/healthz stays 200 while NATS is down).
EXPOSE 7999 5561
ENV GRIP_LISTEN=0.0.0.0:7999 \
    GRIP_CONTROL=0.0.0.0:5561
HEALTHCHECK --interval=5s --timeout=3s --retries=6 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:5561/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "sidecar/dist/process/cli.js"]
