# syntax=docker/dockerfile:1
# Kong 3.9 (DB-less) with Node 20 and the grip plugin server.
# Build from the repository root: docker build -f docker/kong.Dockerfile .

ARG NODE_IMAGE=node:20-bookworm-slim
ARG KONG_IMAGE=kong:3.9.1

# 1. Bundle the plugin server (kong-pdk's server with the grip plugin inside) into one file.
FROM ${NODE_IMAGE} AS plugin
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY plugin ./plugin
COPY sidecar/src ./sidecar/src
RUN npm run build:plugin

# 2. Kong with node and that file.
FROM ${KONG_IMAGE}
USER root
# Node from the official image (Kong's base image has none).
COPY --from=plugin /usr/local/bin/node /usr/local/bin/node
COPY --from=plugin /src/plugin/dist/grip-pluginserver.js /src/plugin/dist/package.json /usr/local/lib/kong-grip/
COPY kong/kong.yml /kong/kong.yml
RUN chmod -R a+rX /usr/local/lib/kong-grip \
 && /usr/local/bin/node /usr/local/lib/kong-grip/grip-pluginserver.js --dump > /tmp/grip-dump.json \
 && node -e 'const [p] = JSON.parse(require("fs").readFileSync("/tmp/grip-dump.json", "utf8")); if (p.Name !== "grip") process.exit(1)' \
 && rm /tmp/grip-dump.json
USER kong

ENV KONG_DATABASE=off \
    KONG_DECLARATIVE_CONFIG=/kong/kong.yml \
    KONG_PLUGINS=bundled,grip \
    KONG_PLUGINSERVER_NAMES=grip \
    KONG_PLUGINSERVER_GRIP_SOCKET=/usr/local/kong/grip.sock \
    KONG_PLUGINSERVER_GRIP_START_CMD="/usr/local/bin/node /usr/local/lib/kong-grip/grip-pluginserver.js --socket /usr/local/kong/grip.sock" \
    KONG_PLUGINSERVER_GRIP_QUERY_CMD="/usr/local/bin/node /usr/local/lib/kong-grip/grip-pluginserver.js --dump" \
    KONG_PROXY_LISTEN="0.0.0.0:8000, 0.0.0.0:8443 ssl" \
    KONG_ADMIN_LISTEN=127.0.0.1:8001 \
    KONG_PROXY_ACCESS_LOG=/dev/stdout \
    KONG_ADMIN_ACCESS_LOG=/dev/stdout \
    KONG_PROXY_ERROR_LOG=/dev/stderr \
    KONG_ADMIN_ERROR_LOG=/dev/stderr \
    KONG_NGINX_EVENTS_WORKER_CONNECTIONS=65536 \
    KONG_NGINX_MAIN_WORKER_RLIMIT_NOFILE=131072

EXPOSE 8000 8443
HEALTHCHECK --interval=10s --timeout=5s --retries=6 CMD kong health
