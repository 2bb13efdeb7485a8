# syntax=docker/dockerfile:1
# Kong 3.9 (DB-less) with Node 20 and the grip plugin server.
# Build from the repository root: docker build -f docker/kong.Dockerfile .

ARG NODE_IMAGE=node:20-bookworm-slim
ARG KONG_IMAGE=kong:3.9.1

# 1. Bundle the plugin into one CommonJS file.
FROM ${NODE_IMAGE} AS plugin
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY plugin ./plugin
COPY sidecar/src ./sidecar/src
RUN npm run build:plugin

# 2. The plugin server's runtime: kong-pdk 0.6.0 and its dependencies, nothing else.
FROM ${NODE_IMAGE} AS pluginserver
WORKDIR /usr/local/lib/grip-pluginserver
COPY docker/pluginserver/package.json docker/pluginserver/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts

# 3. Kong with the above.
FROM ${KONG_IMAGE}
USER root
# Node from the official image (the distribution's nodejs is too old for kong-pdk's commander 10).
COPY --from=pluginserver /usr/local/bin/node /usr/local/bin/node
COPY --from=pluginserver /usr/local/lib/grip-pluginserver /usr/local/lib/grip-pluginserver
# The plugins directory holds only the bundle and its package.json: the server tries to load
# every other entry it finds there.
COPY --from=plugin /src/plugin/dist/grip.js /src/plugin/dist/package.json /usr/local/lib/grip-pluginserver/plugins/
COPY --chmod=0755 kong/start-pluginserver.sh /usr/local/bin/grip-pluginserver
COPY kong/kong.yml /kong/kong.yml
RUN chown -R root:root /usr/local/lib/grip-pluginserver \
 && chmod -R a+rX /usr/local/lib/grip-pluginserver \
 && /usr/local/bin/grip-pluginserver -dump > /tmp/grip-dump.json \
 && node -e 'const [p] = JSON.parse(require("fs").readFileSync("/tmp/grip-dump.json", "utf8")); if (p.Name !== "grip") process.exit(1)' \
 && rm /tmp/grip-dump.json
USER kong

ENV KONG_DATABASE=off \
    KONG_DECLARATIVE_CONFIG=/kong/kong.yml \
    KONG_PLUGINS=bundled,grip \
    KONG_PLUGINSERVER_NAMES=grip \
    KONG_PLUGINSERVER_GRIP_SOCKET=/usr/local/kong/grip.sock \
    KONG_PLUGINSERVER_GRIP_START_CMD=/usr/local/bin/grip-pluginserver \
    KONG_PLUGINSERVER_GRIP_QUERY_CMD="/usr/local/bin/grip-pluginserver -dump" \
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
