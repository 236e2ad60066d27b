#!/bin/bash
# quorum-dr cold-site bootstrap: the EC2 user data of the cold site.
#
# 1. restores the database from S3: with QDR_RESTORE_METHOD=barman-cloud the newest base backup
#    plus every archived WAL segment, replayed to the end of the archive and promoted
#    (quorum_dr.adapters.wal_archive restore, into QDR_PGDATA); else the latest signed pg_dump
#    (quorum_dr.adapters.postgres_backup restore),
# 2. starts the application,
# 3. waits (bounded) until the local health URL answers 200,
# 4. reports ready to the failover state machine with the task token it was launched with
#    (states:SendTaskSuccess), or the failure (states:SendTaskFailure).
# Health fallback: when no task token was given, or reporting fails after bounded retries, the
# app is left running and the state machine's health check of the cold origin decides instead.
#
# Parameters: the placeholders between double @ signs are filled in by the launcher (stacks/cold_site.py fills
# all but the task token into the launch template at synth time; launch_cold_site fills the
# token into the user data it passes to RunInstances). Each can also be given as an environment
# variable of the same name, which wins (the local drill runs the script that way).
set -Eeuo pipefail

placeholder() { # value of a filled placeholder, or "" when it was left unfilled
  case "$1" in @@*@@) echo "" ;; *) echo "$1" ;; esac
}

QDR_SERVICE=${QDR_SERVICE:-$(placeholder '@@SERVICE@@')}
QDR_STATES_REGION=${QDR_STATES_REGION:-$(placeholder '@@STATES_REGION@@')}
QDR_BACKUP_BUCKET=${QDR_BACKUP_BUCKET:-$(placeholder '@@BACKUP_BUCKET@@')}
QDR_BACKUP_PREFIX=${QDR_BACKUP_PREFIX:-$(placeholder '@@BACKUP_PREFIX@@')}
QDR_DSN=${QDR_DSN:-$(placeholder '@@DSN@@')}
QDR_TASK_TOKEN=${QDR_TASK_TOKEN:-$(placeholder '@@TASK_TOKEN@@')}
QDR_HEALTH_URL=${QDR_HEALTH_URL:-$(placeholder '@@HEALTH_URL@@')}
QDR_READY_TIMEOUT=${QDR_READY_TIMEOUT:-$(placeholder '@@READY_TIMEOUT@@')}
QDR_MANIFEST_KEY_SECRET=${QDR_MANIFEST_KEY_SECRET:-$(placeholder '@@MANIFEST_KEY_SECRET@@')}
QDR_SECRETS_REGION=${QDR_SECRETS_REGION:-$(placeholder '@@SECRETS_REGION@@')}
QDR_MAX_BACKUP_AGE=${QDR_MAX_BACKUP_AGE:-$(placeholder '@@MAX_BACKUP_AGE@@')}
QDR_RESTORE_METHOD=${QDR_RESTORE_METHOD:-$(placeholder '@@RESTORE_METHOD@@')}
QDR_WAL_SERVER=${QDR_WAL_SERVER:-$(placeholder '@@WAL_SERVER@@')}
QDR_S3_ENDPOINT=${QDR_S3_ENDPOINT:-$(placeholder '@@S3_ENDPOINT@@')}
QDR_PGDATA=${QDR_PGDATA:-$(placeholder '@@PGDATA@@')}
QDR_PG_START_COMMAND=${QDR_PG_START_COMMAND:-$(placeholder '@@PG_START_COMMAND@@')}
QDR_PG_STOP_COMMAND=${QDR_PG_STOP_COMMAND:-$(placeholder '@@PG_STOP_COMMAND@@')}
QDR_PG_SETTINGS=${QDR_PG_SETTINGS:-} # NAME=VALUE ... for postgresql.auto.conf (the drill's port)
QDR_START_COMMAND=${QDR_START_COMMAND:-systemctl start quorum-dr-app.service}
QDR_PYTHON=${QDR_PYTHON:-python3}
QDR_AWS=${QDR_AWS:-aws}
QDR_LOG=${QDR_LOG:-/var/log/quorum-dr-bootstrap.log}
QDR_READY_FILE=${QDR_READY_FILE:-/var/run/quorum-dr-ready}
QDR_REPORT_ATTEMPTS=${QDR_REPORT_ATTEMPTS:-5}

QDR_READY_TIMEOUT=${QDR_READY_TIMEOUT:-600}
QDR_HEALTH_URL=${QDR_HEALTH_URL:-http://127.0.0.1/health}

exec > >(tee -a "$QDR_LOG") 2>&1

log() { printf '%s quorum-dr bootstrap: %s\n' "$(date -u +%FT%TZ)" "$*"; }

report() { # report <success|failure> <json-output-or-cause>; bounded retries; never fatal
  local kind=$1 payload=$2 attempt=1 attempts=$QDR_REPORT_ATTEMPTS
  if [ -z "$QDR_TASK_TOKEN" ]; then
    log "no task token: not reporting ($kind); the state machine's health check decides"
    return 0
  fi
  case "$attempts" in '' | *[!0-9]*) attempts=5 ;; esac # checked below; never let it stop a report
  local region_args=()
  if [ -n "$QDR_STATES_REGION" ]; then region_args=(--region "$QDR_STATES_REGION"); fi
  while [ "$attempt" -le "$attempts" ]; do
    if [ "$kind" = success ]; then
      "$QDR_AWS" stepfunctions send-task-success "${region_args[@]}" \
        --task-token "$QDR_TASK_TOKEN" --task-output "$payload" && return 0
    else
      "$QDR_AWS" stepfunctions send-task-failure "${region_args[@]}" \
        --task-token "$QDR_TASK_TOKEN" --error ColdSiteBootstrapFailed --cause "${payload:0:32000}" && return 0
    fi
    log "reporting $kind failed (attempt $attempt of $attempts)"
    sleep $((attempt * 2))
    attempt=$((attempt + 1))
  done
  log "could not report $kind; the state machine's health check decides"
  return 0
}

fail_early() { # fail_early <sentence>: a parameter is wrong; report it (when a token is known) and stop
  log "$1"
  report failure "cold site bootstrap of ${QDR_SERVICE:-<no service>} cannot start: $1"
  exit 2
}

# Validate every parameter before anything uses one: a bad value is reported as itself, not as
# an arithmetic error of some later step.
QDR_RESTORE_METHOD=${QDR_RESTORE_METHOD:-pg_dump}
case "$QDR_RESTORE_METHOD" in
  pg_dump) required=(QDR_MANIFEST_KEY_SECRET QDR_MAX_BACKUP_AGE) ;;
  barman-cloud) required=(QDR_WAL_SERVER QDR_PGDATA QDR_PG_START_COMMAND QDR_PG_STOP_COMMAND) ;;
  *) fail_early "QDR_RESTORE_METHOD must be pg_dump or barman-cloud, not '$QDR_RESTORE_METHOD'" ;;
esac
for name in QDR_SERVICE QDR_BACKUP_BUCKET QDR_BACKUP_PREFIX QDR_DSN "${required[@]}"; do
  if [ -z "${!name}" ]; then
    fail_early "missing parameter $name (fill @@...@@ or set the environment variable)"
  fi
done
if [ "$QDR_RESTORE_METHOD" = barman-cloud ]; then QDR_MAX_BACKUP_AGE=${QDR_MAX_BACKUP_AGE:-1}; fi
for name in QDR_READY_TIMEOUT QDR_MAX_BACKUP_AGE QDR_REPORT_ATTEMPTS; do
  case "${!name}" in
    '' | *[!0-9]* | 0*) fail_early "$name must be a whole number of seconds or attempts above 0, not '${!name}'" ;;
  esac
  value=${!name}
  if [ "${#value}" -gt 9 ]; then fail_early "$name is too large: '$value'"; fi
done
case "$QDR_HEALTH_URL" in
  http://* | https://*) ;;
  *) fail_early "QDR_HEALTH_URL must be an http(s) URL, not '$QDR_HEALTH_URL'" ;;
esac

STEP=start
on_error() {
  local code=$?
  trap - ERR
  # set -E runs this trap in subshells too (a failing $(...)): only the main shell reports.
  if [ "$BASHPID" != "$$" ]; then exit "$code"; fi
  local why="failed in step '$STEP' (exit $code)"
  if [ -n "${STEP_CAUSE:-}" ]; then why="$why: $STEP_CAUSE"; fi
  log "$why"
  report failure "cold site bootstrap of $QDR_SERVICE $why; see $QDR_LOG"
  exit "$code"
}
trap on_error ERR

STEP=restore
restore_errors=$(mktemp)
restore_code=0
if [ "$QDR_RESTORE_METHOD" = barman-cloud ]; then
  log "restoring the newest base backup of $QDR_SERVICE and its archived WAL from s3://$QDR_BACKUP_BUCKET/$QDR_BACKUP_PREFIX ($QDR_WAL_SERVER)"
  endpoint_args=()
  if [ -n "$QDR_S3_ENDPOINT" ]; then endpoint_args=(--endpoint-url "$QDR_S3_ENDPOINT"); fi
  setting_args=()
  for setting in $QDR_PG_SETTINGS; do setting_args+=(--set "$setting"); done
  log "stopping the image's own PostgreSQL: $QDR_PG_STOP_COMMAND"
  bash -c "$QDR_PG_STOP_COMMAND" || log "stopping it failed (not running?); the restore moves its data aside"
  restore_output=$("$QDR_PYTHON" -m quorum_dr.adapters.wal_archive restore \
    --bucket "$QDR_BACKUP_BUCKET" --prefix "$QDR_BACKUP_PREFIX" --server "$QDR_WAL_SERVER" \
    "${endpoint_args[@]}" --pgdata "$QDR_PGDATA" --start-command "$QDR_PG_START_COMMAND" \
    --dsn "$QDR_DSN" --move-aside "${setting_args[@]}" 2>"$restore_errors") || restore_code=$?
else
  log "restoring the latest backup of $QDR_SERVICE from s3://$QDR_BACKUP_BUCKET/$QDR_BACKUP_PREFIX"
  secrets_region_args=()
  if [ -n "$QDR_SECRETS_REGION" ]; then secrets_region_args=(--secrets-region "$QDR_SECRETS_REGION"); fi
  restore_output=$("$QDR_PYTHON" -m quorum_dr.adapters.postgres_backup restore \
    --bucket "$QDR_BACKUP_BUCKET" --prefix "$QDR_BACKUP_PREFIX" --dsn "$QDR_DSN" \
    --manifest-key-secret "$QDR_MANIFEST_KEY_SECRET" "${secrets_region_args[@]}" \
    --max-age-seconds "$QDR_MAX_BACKUP_AGE" 2>"$restore_errors") || restore_code=$?
fi
if [ "$restore_code" -ne 0 ]; then
  # the restore's own sentence ({"ok": false, "reason": ...} on stderr) is the cause a person reads
  STEP_CAUSE=$("$QDR_PYTHON" -c '
import json, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
for line in reversed(text.splitlines()):
    try:
        print(json.loads(line)["reason"]); break
    except (ValueError, KeyError, TypeError):
        continue
else:
    print(" ".join(text.split())[-600:] or "no message")
' "$restore_errors" 2>/dev/null || tail -c 600 "$restore_errors")
  cat "$restore_errors" >&2
  (exit "$restore_code")
fi
log "restore: $restore_output"
if [ -s "$restore_errors" ]; then log "restore progress: $(tr '\n' ' ' <"$restore_errors")"; fi

STEP=start-app
log "starting the application: $QDR_START_COMMAND"
bash -c "$QDR_START_COMMAND"

STEP=health
log "waiting up to ${QDR_READY_TIMEOUT}s for $QDR_HEALTH_URL"
deadline=$(($(date +%s) + QDR_READY_TIMEOUT))
until curl -fsS -o /dev/null --max-time 5 "$QDR_HEALTH_URL"; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "health URL did not answer within ${QDR_READY_TIMEOUT}s"
    false
  fi
  sleep 2
done

STEP=report
touch "$QDR_READY_FILE" 2>/dev/null || true
instance_id=$(cat /var/lib/cloud/data/instance-id 2>/dev/null || hostname)
output=$("$QDR_PYTHON" -c '
import json, sys
restore = sys.argv[3]
try:
    restore = json.loads(restore)
except ValueError:
    pass
print(json.dumps({"ready": True, "service": sys.argv[1], "instance": sys.argv[2], "restore": restore}))
' "$QDR_SERVICE" "$instance_id" "$restore_output")
log "ready: $output"
trap - ERR
report success "$output"
