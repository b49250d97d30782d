#!/usr/bin/env bash
# `make dev`: the Task API on http://localhost:9000, routed as API Gateway
# routes it (cargo lambda watch), on a local DynamoDB (dynoxide) whose data
# is kept in .dev/dynamodb.sqlite between runs. Ctrl-C stops both.
#
# Settings, from the shell or an optional .env file at the repository root
# (the shell wins): API_PORT (9000), DYNAMODB_PORT (8000), AUTH (header:
# X-User-Id names the caller; token: bearer tokens from the local issuer,
# as deployed), ISSUER_PORT (9001, token mode), and any variable the
# functions read (CORS_ALLOWED_ORIGINS, MAX_TASKS, LOG_LEVEL, EVENTS_...).
#
# `make dev DYNAMODB=aws TABLE_NAME=<table> [AWS_PROFILE=<profile>]`: the
# same functions on a real table with the developer's own AWS
# configuration (scripts/lib.sh, export_local_env); no local DynamoDB.
#
# `FAULT_PROXY_PORT=8010 make dev`: the functions reach the local DynamoDB
# through devstack's fault-injecting proxy on that port; faults are set
# with `curl -X POST localhost:8010/__faults -d '{"rules": [...]}'`
# (docs/faults.md).
#
# `make trace` (while or after it runs): the last requests' X-Ray traces
# as trees with timings (devstack receives them on UDP XRAY_PORT, 2000).
#
# `scripts/dev.sh --print-env`: prints the environment the functions would
# get (credential values masked) and exits; starts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
load_dotenv

API_PORT="${API_PORT:-9000}"
DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"
AUTH="${AUTH:-header}"
ISSUER_PORT="${ISSUER_PORT:-9001}"

export_local_env "$DYNAMODB_PORT" "$AUTH" "http://127.0.0.1:$ISSUER_PORT"
FAULT_PROXY_PORT="${FAULT_PROXY_PORT:-}"
if [ -n "$FAULT_PROXY_PORT" ] && [ "${DYNAMODB:-local}" = local ]; then
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$FAULT_PROXY_PORT"
fi
if [ "${1:-}" = "--print-env" ]; then
  env | grep -E '^(AWS_|TABLE_NAME=|IDENTITY_MODE=|JWT_)' \
    | sed -E 's/^(AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)=.+/\1=***/' | sort
  exit 0
fi
ensure_tools

# shared/local-authorizer: in token mode every function checks bearer
# tokens, standing in for API Gateway's JWT authorizer (shared/Cargo.toml).
LOCAL_FEATURES=(--features shared/local-authorizer)
BUILD_ARGS=(--workspace --bins "${LOCAL_FEATURES[@]}")
echo "==> building the functions and the local DynamoDB"
touch target/debug/.cargo-run-built.stamp.next 2> /dev/null || true
cargo build "${BUILD_ARGS[@]}"
mv target/debug/.cargo-run-built.stamp.next target/debug/.cargo-run-built.stamp 2> /dev/null || true
# Watch starts each instance through scripts/cargo-run-built: the binary
# just built, in milliseconds, instead of a `cargo run` (and a `cargo
# metadata`) per instance that wait on cargo's lock, seconds each under a
# burst. Watch also walks the tree under its manifest's directory before it
# starts each instance (its file watcher's ignore files, even with
# --ignore-changes): with .dev/'s venv and target/ that is 7,000
# directories, up to two seconds an instance, one instance after another.
# So watch is given a copy of Cargo.toml (the router) in a directory of its
# own, .dev/watch/, and cargo-run-built answers for the checkout
# (CARGO_RUN_BUILT_ROOT). Its own reload (a watcher per instance) would
# cost as much again, so it runs with --ignore-changes and this script
# reloads instead (run_watch): when a source of the functions changes,
# watch is restarted at once, and the first instance started after it
# rebuilds (CARGO_RUN_BUILT_REBUILD) before it serves, so the first
# request after a change is served by the new code, as with `cargo run`.
# Watch itself is run directly (`cargo lambda` would set CARGO itself).
# scripts/burst.py measures a burst of cold starts.
export REAL_CARGO
REAL_CARGO="$(command -v cargo)"
export CARGO="$PWD/scripts/cargo-run-built"
export CARGO_RUN_BUILT_REBUILD="${BUILD_ARGS[*]}"
export CARGO_RUN_BUILT_ROOT="$PWD"
# --concurrency 4: up to 4 instances of a function, as Lambda scales out
# (an open /tasks/events stream holds one for its lifetime).
# --disable-cors: CORS is the functions' (shared::cors), as API Gateway's is
# deployed: none unless CORS_ALLOWED_ORIGINS is set, e.g.
# CORS_ALLOWED_ORIGINS=http://localhost:5173 make dev
# With a local DynamoDB, watch listens on WATCH_PORT behind devstack's API
# proxy on API_PORT; against AWS (no devstack) on API_PORT itself.
if [ "${DYNAMODB:-local}" = aws ]; then
  WATCH_PORT="$API_PORT"
else
  WATCH_PORT="${WATCH_PORT:-$(free_port)}"
fi
WATCH=("$PWD/$TOOLS_VENV/bin/cargo-lambda" lambda watch "${LOCAL_FEATURES[@]}" --ignore-changes
  --disable-cors --concurrency 4 --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT")
WATCH_PID=""

# Runs watch until it exits; restarts it when a source of the functions
# (what CARGO_RUN_BUILT_REBUILD rebuilds from) is newer than its start.
run_watch() {
  local started=".dev/watch.started"
  mkdir -p .dev
  while true; do
    touch "$started"
    mkdir -p .dev/watch
    cp Cargo.toml .dev/watch/Cargo.toml
    (cd .dev/watch && exec setsid "${WATCH[@]}") &
    WATCH_PID=$!
    while kill -0 "$WATCH_PID" 2> /dev/null; do
      sleep 0.5
      if [ -n "$(find shared functions Cargo.toml Cargo.lock -newer "$started" -type f -print -quit 2> /dev/null)" ]; then
        echo "==> sources changed: restarting the functions (the next request rebuilds them)"
        stop_group "$WATCH_PID"
        break
      fi
    done
    kill -0 "$WATCH_PID" 2> /dev/null || [ -n "$(find shared functions Cargo.toml Cargo.lock -newer "$started" -type f -print -quit 2> /dev/null)" ] || return 0
  done
}

if [ "${DYNAMODB:-local}" = aws ]; then
  echo "==> the API: http://localhost:$API_PORT on table $TABLE_NAME (AWS${AWS_PROFILE:+, profile $AWS_PROFILE})"
  trap '[ -z "$WATCH_PID" ] || stop_group "$WATCH_PID"' EXIT INT TERM
  run_watch
  exit 0
fi

mkdir -p .dev
# --stream-to: the table's stream goes to the audit function (task
# history) through watch's Invoke API, as deployed; the position is kept
# beside the database, so a restart delivers only what is new.
# --api-proxy: the API on API_PORT is devstack's front door to watch on
# WATCH_PORT: the requests watch cannot carry (a body that is not UTF-8, a
# header value with bytes over 0x7F) go to the functions as API Gateway
# sends them (devstack/src/api_proxy.rs); everything else passes as is.
DEVSTACK_ARGS=(--port "$DYNAMODB_PORT" --db .dev/dynamodb.sqlite --stream-to "http://127.0.0.1:$WATCH_PORT"
  --api-proxy "$API_PORT=http://127.0.0.1:$WATCH_PORT")
if [ "$AUTH" = token ]; then
  # The local OpenID issuer: JWKS and discovery on ISSUER_PORT, its key
  # kept in .dev/issuer-key.der (tokens: make token USER=alice).
  DEVSTACK_ARGS+=(--issuer-port "$ISSUER_PORT" --issuer-key .dev/issuer-key.der)
fi
if [ -n "$FAULT_PROXY_PORT" ]; then
  DEVSTACK_ARGS+=(--fault-proxy "$FAULT_PROXY_PORT")
fi
# devstack is the functions' X-Ray daemon (UDP XRAY_PORT, 2000 as on
# Lambda): each function writes its own segment locally
# (XRAY_LOCAL_SEGMENTS) and a subsegment per DynamoDB call; `make trace`
# prints the last requests as trees.
XRAY_PORT="${XRAY_PORT:-2000}"
DEVSTACK_ARGS+=(--xray-port "$XRAY_PORT" --traces .dev/traces.jsonl)
export AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:$XRAY_PORT" XRAY_LOCAL_SEGMENTS=1
setsid target/debug/devstack "${DEVSTACK_ARGS[@]}" &
DEVSTACK_PID=$!
trap '[ -z "$WATCH_PID" ] || stop_group "$WATCH_PID"; stop_group "$DEVSTACK_PID"' EXIT INT TERM
wait_for_http "$AWS_ENDPOINT_URL_DYNAMODB" 30

if [ "$AUTH" = token ]; then
  wait_for_http "$JWT_ISSUER/.well-known/openid-configuration" 30
  echo "==> the API: http://localhost:$API_PORT, token mode (issuer $JWT_ISSUER, audience $JWT_AUDIENCE)"
  echo "    try: curl -H \"Authorization: Bearer \$(make -s token USER=alice)\" localhost:$API_PORT/tasks/export"
else
  echo "==> the API: http://localhost:$API_PORT (try: curl -H 'X-User-Id: alice' localhost:$API_PORT/tasks)"
fi
run_watch
