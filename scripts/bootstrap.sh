#!/usr/bin/env bash
# Prepare a fresh machine: PostgreSQL 15 server binaries (apt, when missing), a virtualenv in
# .venv with every Python package, and the project installed in it. Idempotent and quick when
# nothing changed (a stamp file remembers the hash of the requirements).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_BIN=/usr/lib/postgresql/15/bin
PYTHON=${PYTHON:-python3}

log() { printf '[bootstrap] %s\n' "$*"; }

if [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pg_basebackup" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "PostgreSQL 15 server binaries are missing in $PG_BIN and installing them needs root:"
    log "  sudo apt-get install -y postgresql-15"
    exit 1
  fi
  log "installing PostgreSQL 15 server binaries with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql-15 >/dev/null
  # The Debian package starts a cluster of its own; we start our own, so stop theirs.
  if command -v pg_ctlcluster >/dev/null 2>&1; then pg_ctlcluster 15 main stop 2>/dev/null || true; fi
fi

# barman's cloud commands (base backups, WAL archiving and the cold site's point-in-time restore;
# quorum_dr/adapters/wal_archive.py): the Debian package a DR host and the cold AMI install too. They
# run as the postgres user, under the system Python, so they cannot come from .venv.
if ! command -v barman-cloud-backup >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    log "barman-cloud commands are missing and installing them needs root:"
    log "  sudo apt-get install -y barman-cli-cloud"
    exit 1
  fi
  log "installing barman-cli-cloud with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq barman-cli-cloud >/dev/null
fi

if ! command -v ip >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  log "installing iproute2 (network namespaces for partition tests)"
  apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
fi

if ! command -v iptables >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  log "installing iptables (per-port partitions between a probe region and a site in the drill)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq iptables >/dev/null || log "iptables unavailable: partitions fall back to per-address neighbour entries"
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.deps-installed
want=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing Python packages into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi

# .venv-lambda: the Python the functions run on (stacks/lambda_asset.py RUNTIME_VERSION) with only
# the runtime requirements and the test tools, for `make test-lambda-runtime`. On CI (CI=true) a
# missing interpreter fails; on a workstation the run is skipped with a message.
LAMBDA_PY_VERSION=$(sed -n 's/^RUNTIME_VERSION = "\(.*\)"$/\1/p' stacks/lambda_asset.py)
LAMBDA_TEST_DEPS=(pytest pytest-timeout hypothesis "$(grep '^moto\[' requirements-dev.txt)")
find_lambda_python() {
  local candidate
  for candidate in "${LAMBDA_PYTHON:-}" "$HOME/.pyenv/versions/$LAMBDA_PY_VERSION".*/bin/python3 \
      /root/.pyenv/versions/"$LAMBDA_PY_VERSION".*/bin/python3 "$(command -v "python$LAMBDA_PY_VERSION" || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] &&
        "$candidate" -c "import sys, venv; assert '%d.%d' % sys.version_info[:2] == '$LAMBDA_PY_VERSION'" 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  if [ "$(id -u)" -eq 0 ] && apt-cache show "python$LAMBDA_PY_VERSION-venv" >/dev/null 2>&1; then
    apt-get install -y -qq "python$LAMBDA_PY_VERSION" "python$LAMBDA_PY_VERSION-venv" >/dev/null &&
      command -v "python$LAMBDA_PY_VERSION" && return 0
  fi
  return 1
}
rm -f .venv-lambda/.missing
if lambda_python=$(find_lambda_python); then
  if [ ! -x .venv-lambda/bin/python ]; then
    log "creating .venv-lambda with $lambda_python (the Lambda runtime's Python)"
    "$lambda_python" -m venv .venv-lambda
  fi
  lstamp=.venv-lambda/.deps-installed
  lwant=$(printf '%s\n' "$(cat requirements.txt)" "${LAMBDA_TEST_DEPS[@]}" | sha256sum | cut -d' ' -f1)
  if [ ! -f "$lstamp" ] || [ "$(cat "$lstamp")" != "$lwant" ]; then
    log "installing requirements.txt and the test tools into .venv-lambda"
    .venv-lambda/bin/python -m pip install -q -r requirements.txt "${LAMBDA_TEST_DEPS[@]}"
    echo "$lwant" > "$lstamp"
  fi
elif [ "${CI:-}" = "true" ]; then
  log "no Python $LAMBDA_PY_VERSION (the Lambda runtime) found: pyenv, python$LAMBDA_PY_VERSION on PATH, apt"
  exit 1
else
  mkdir -p .venv-lambda
  echo "no Python $LAMBDA_PY_VERSION found (pyenv, python$LAMBDA_PY_VERSION on PATH, apt)" > .venv-lambda/.missing
  log "WARNING: no Python $LAMBDA_PY_VERSION found; make test-lambda-runtime will be skipped"
fi

if [ -f package.json ] && [ ! -d node_modules ]; then
  log "installing npm tools (asl-validator)"
  npm ci --silent --no-audit --no-fund
fi
log "ready"
