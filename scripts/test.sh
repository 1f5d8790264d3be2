#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs them:
# linters, the type checker, the layering check and the whole pytest suite
# (unit, property, real-socket, real-node and real-Chromium tests).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# System packages: Debian's Chromium for the browser tests (Playwright drives
# it; no browser is ever downloaded) and node/npm for the reference peers.
missing=()
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}"
fi

# The fan-out and deployment tests need a Redis server: $REDIS_URL if set,
# else the one on 127.0.0.1:6379 if it answers, else one started here that
# keeps nothing on disk. (Some tests also start redis-server and nginx
# themselves, on free ports.)
if [ -z "${REDIS_URL:-}" ]; then
  redis_log=/tmp/websocket-multiplex-redis.log
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" \
      --appendonly no --dir /tmp --logfile "$redis_log"
    for _ in $(seq 50); do
      redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
      sleep 0.1
    done
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "scripts/test.sh: no Redis answers on 127.0.0.1:6379, even after" \
      "starting redis-server (its log: $redis_log)" >&2
    tail -n 20 "$redis_log" >&2 2>/dev/null || true
    exit 1
  fi
  export REDIS_URL=redis://127.0.0.1:6379/0
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -c scripts/constraints.txt -e '.[test,docs]'
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
npm ci --prefix benchmarks/node --no-audit --no-fund --loglevel=error

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
.venv/bin/ruff check src tests examples benchmarks stress fuzz scripts docs/conf.py
.venv/bin/ruff format --check src tests examples benchmarks stress fuzz scripts docs/conf.py
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest -q "$@"
