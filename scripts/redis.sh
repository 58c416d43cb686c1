#!/usr/bin/env bash
# Install (Debian's redis-server) if missing, start it on loopback and print its URL.
# Idempotent: safe to run when the server is already up. The shared rate limiter's tests use it.
set -euo pipefail

port="${DRIFTLINE_REDIS_PORT:-6379}"
dir="${DRIFTLINE_REDIS_DIR:-/var/lib/redis}"

if ! command -v redis-server >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends redis-server >&2
fi

if ! redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
  mkdir -p "$dir"
  # A cache for token buckets, not a database: no snapshots, no append-only file.
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --protected-mode yes \
    --save '' --appendonly no --dir "$dir" \
    --pidfile "$dir/redis-$port.pid" --logfile "$dir/redis-$port.log" >&2
fi

for _ in $(seq 1 50); do
  redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null
echo "redis://127.0.0.1:${port}/0"
