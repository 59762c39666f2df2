#!/bin/sh
# RAY_SERVE_HAPROXY_BINARY_PATH wrapper. Ray 2.60's HAProxy template binds its Prometheus exporter
# ("bind :PORT") and stats page ("bind *:PORT") on every interface, with no setting for the host.
# Rewrite wildcard binds in the generated config to 127.0.0.1, then exec the bundled binary with
# the same argv (Ray recognises its HAProxy by the -f path). SURGE_HAPROXY_REAL names the binary.
cfg=""; prev=""
for a in "$@"; do [ "$prev" = "-f" ] && cfg="$a"; prev="$a"; done
if [ -n "$cfg" ] && [ -f "$cfg" ]; then
  sed -i -E 's/^([[:space:]]*bind[[:space:]]+)(\*|0\.0\.0\.0|::|\[::\])?:([0-9]+)/\1127.0.0.1:\3/' "$cfg"
fi
exec "${SURGE_HAPROXY_REAL:?SURGE_HAPROXY_REAL is not set}" "$@"
