#!/usr/bin/env bash
# `make dev`: the Task API on http://localhost:9000, routed as API Gateway
# routes it (cargo lambda watch), on a local DynamoDB (dynoxide) whose data
# is kept in .dev/dynamodb.sqlite between runs. Ctrl-C stops both.
#
# `make dev DYNAMODB=aws TABLE_NAME=<table> [AWS_PROFILE=<profile>]`: the
# same functions on a real table with the developer's own AWS
# configuration (scripts/lib.sh, export_local_env); no local DynamoDB.
#
# `scripts/dev.sh --print-env`: prints the environment the functions would
# get (credential values masked) and exits; starts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

API_PORT="${API_PORT:-9000}"
DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"

export_local_env "$DYNAMODB_PORT"
if [ "${1:-}" = "--print-env" ]; then
  env | grep -E '^(AWS_|TABLE_NAME=|IDENTITY_MODE=)' \
    | sed -E 's/^(AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)=.+/\1=***/' | sort
  exit 0
fi
ensure_tools

echo "==> building the functions and the local DynamoDB"
cargo build --workspace --bins

if [ "${DYNAMODB:-local}" = aws ]; then
  echo "==> the API: http://localhost:$API_PORT on table $TABLE_NAME (AWS${AWS_PROFILE:+, profile $AWS_PROFILE})"
  exec cargo lambda watch --disable-cors --concurrency 4 --invoke-port "$API_PORT"
fi

mkdir -p .dev
# --stream-to: the table's stream goes to the audit function (task
# history) through watch's Invoke API, as deployed.
setsid target/debug/devstack --port "$DYNAMODB_PORT" --db .dev/dynamodb.sqlite --stream-to "http://127.0.0.1:$API_PORT" &
DEVSTACK_PID=$!
trap 'stop_group "$DEVSTACK_PID"' EXIT INT TERM
wait_for_http "$AWS_ENDPOINT_URL_DYNAMODB" 30

echo "==> the API: http://localhost:$API_PORT (try: curl -H 'X-User-Id: alice' localhost:$API_PORT/tasks)"
# --concurrency 4: up to 4 instances of a function, as Lambda scales out
# (an open /tasks/events stream holds one for its lifetime).
# --disable-cors: CORS is the functions' (shared::cors), as API Gateway's is
# deployed: none unless CORS_ALLOWED_ORIGINS is set, e.g.
# CORS_ALLOWED_ORIGINS=http://localhost:5173 make dev
cargo lambda watch --disable-cors --concurrency 4 --invoke-port "$API_PORT"
