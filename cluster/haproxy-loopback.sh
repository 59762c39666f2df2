#!/bin/sh
# RAY_SERVE_HAPROXY_BINARY_PATH wrapper. Ray 2.60's HAProxy template binds its Prometheus exporter
# ("bind :PORT") and stats page ("bind *:PORT") on every interface, with no setting for the host.
# Rewrite wildcard binds in the generated config to 127.0.0.1, then exec the bundled binary with
# the same argv (Ray recognises its HAProxy by the -f path). SURGE_HAPROXY_REAL names the binary.
# Also adds `option forwardfor` to the HTTP frontend, so the API can tell clients apart.
cfg=""; prev=""
for a in "$@"; do [ "$prev" = "-f" ] && cfg="$a"; prev="$a"; done
if [ -n "$cfg" ] && [ -f "$cfg" ]; then
  sed -i -E 's/^([[:space:]]*bind[[:space:]]+)(\*|0\.0\.0\.0|::|\[::\])?:([0-9]+)/\1127.0.0.1:\3/' "$cfg"
  # The API sees HAProxy as every request's peer: append the real client address to X-Forwarded-For
  # (per-address rate limits read the last hop; SURGE_FORWARDED_HOPS). Once, even if re-run on the file.
  grep -q '^    option forwardfor$' "$cfg" || sed -i -E 's/^frontend http_frontend$/&\n    option forwardfor/' "$cfg"
fi
exec "${SURGE_HAPROXY_REAL:?SURGE_HAPROXY_REAL is not set}" "$@"
