#!/bin/sh
# Start (or, with -dump, describe) the kong-grip plugin server for Kong.
#
# Kong runs this twice: as pluginserver_grip_query_cmd ("start-pluginserver.sh -dump") from
# the master process at startup, and as pluginserver_grip_start_cmd from worker 0, which
# respawns it if it exits. The start command gets an EMPTY environment (nginx clears it): no
# PATH, none of the container's variables. So everything is spelled out here with absolute
# paths; the GRIP_* overrides exist for tests and unusual layouts, and are simply unset when
# Kong starts us.
#
# stdout of the -dump form must be exactly one JSON document (Kong parses it and refuses to
# start on anything else): never pass -v, never print anything here.
set -eu

PATH=/usr/local/bin:/usr/bin:/bin
export PATH
NODE_ENV=production
export NODE_ENV

NODE=${GRIP_NODE:-/usr/local/bin/node}
SERVER=${GRIP_PLUGINSERVER:-/usr/local/lib/grip-pluginserver/node_modules/kong-pdk/bin/kong-js-pluginserver}
PLUGINS_DIR=${GRIP_PLUGINS_DIR:-/usr/local/lib/grip-pluginserver/plugins}
KONG_PREFIX=${GRIP_KONG_PREFIX:-/usr/local/kong}
SOCK_NAME=${GRIP_SOCK_NAME:-grip.sock}

# kong-pdk registers ts-node, which reads a tsconfig.json from the working directory: run
# where there is none but our own plugin.
cd "$PLUGINS_DIR"

case "${1:-}" in
  -dump|--dump)
    exec "$NODE" "$SERVER" --plugins-directory "$PLUGINS_DIR" --dump-all-plugins
    ;;
  "")
    # The socket lives under the Kong prefix, owned by the kong user (umask keeps it private:
    # anything that can write to it can crash the server with pipelined frames).
    umask 077
    exec "$NODE" "$SERVER" --plugins-directory "$PLUGINS_DIR" --kong-prefix "$KONG_PREFIX" --sock-name "$SOCK_NAME"
    ;;
  *)
    echo "usage: $0 [-dump]" >&2
    exit 2
    ;;
esac
