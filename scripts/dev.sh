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
echo "==> building the functions and the local DynamoDB"
cargo build --workspace --bins "${LOCAL_FEATURES[@]}"

if [ "${DYNAMODB:-local}" = aws ]; then
  echo "==> the API: http://localhost:$API_PORT on table $TABLE_NAME (AWS${AWS_PROFILE:+, profile $AWS_PROFILE})"
  exec cargo lambda watch "${LOCAL_FEATURES[@]}" --disable-cors --concurrency 4 --invoke-port "$API_PORT"
fi

mkdir -p .dev
# --stream-to: the table's stream goes to the audit function (task
# history) through watch's Invoke API, as deployed; the position is kept
# beside the database, so a restart delivers only what is new.
DEVSTACK_ARGS=(--port "$DYNAMODB_PORT" --db .dev/dynamodb.sqlite --stream-to "http://127.0.0.1:$API_PORT")
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
trap 'stop_group "$DEVSTACK_PID"' EXIT INT TERM
wait_for_http "$AWS_ENDPOINT_URL_DYNAMODB" 30

if [ "$AUTH" = token ]; then
  wait_for_http "$JWT_ISSUER/.well-known/jwks.json" 30
  echo "==> the API: http://localhost:$API_PORT, token mode (issuer $JWT_ISSUER, audience $JWT_AUDIENCE)"
  echo "    try: curl -H \"Authorization: Bearer \$(make -s token USER=alice)\" localhost:$API_PORT/tasks/export"
else
  echo "==> the API: http://localhost:$API_PORT (try: curl -H 'X-User-Id: alice' localhost:$API_PORT/tasks)"
fi
# --concurrency 4: up to 4 instances of a function, as Lambda scales out
# (an open /tasks/events stream holds one for its lifetime).
# --disable-cors: CORS is the functions' (shared::cors), as API Gateway's is
# deployed: none unless CORS_ALLOWED_ORIGINS is set, e.g.
# CORS_ALLOWED_ORIGINS=http://localhost:5173 make dev
cargo lambda watch "${LOCAL_FEATURES[@]}" --disable-cors --concurrency 4 --invoke-port "$API_PORT"
