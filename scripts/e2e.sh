#!/usr/bin/env bash
# End-to-end tests: starts the whole local stack on free ports (in-memory
# DynamoDB, cargo lambda watch), runs devstack/tests/e2e.rs against it over
# HTTP, then invokes every function with its sample event through
# `cargo lambda invoke`. Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_tools
API_PORT="$(free_port)"
DYNAMODB_PORT="$(free_port)"
export_local_env "$DYNAMODB_PORT"
mkdir -p .dev
LOG=".dev/e2e-watch.log"

echo "==> building the functions"
cargo build --workspace --bins --quiet

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do stop_group "$pid"; done
}
trap cleanup EXIT INT TERM

setsid target/debug/devstack --memory --port "$DYNAMODB_PORT" > .dev/e2e-dynamodb.log 2>&1 &
PIDS+=($!)
wait_for_http "$AWS_ENDPOINT_URL_DYNAMODB" 30

setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$API_PORT" > "$LOG" 2>&1 &
PIDS+=($!)
if ! wait_for_http "http://127.0.0.1:$API_PORT/health" 120; then
  cat "$LOG" >&2
  exit 1
fi

echo "==> end-to-end tests against http://127.0.0.1:$API_PORT"
if ! TASK_API_URL="http://127.0.0.1:$API_PORT" cargo test -p devstack --test e2e -- --ignored; then
  echo "--- cargo lambda watch log ($LOG) ---" >&2
  tail -n 80 "$LOG" >&2
  exit 1
fi

echo "==> cargo lambda invoke <function> --data-file events/<function>.json"
# The status each sample event gets from a fresh stack: the task events name
# a task id that does not exist yet, so those are the contract's 404.
expected_status() {
  case "$1" in
    health | me | list_tasks | docs) echo 200 ;;
    create_task) echo 201 ;;
    get_task | replace_task | update_task | delete_task) echo 404 ;;
    fallback) echo 405 ;;
    *) echo "unknown function $1" >&2; return 1 ;;
  esac
}
passed=0
failed=0
for event in events/*.json; do
  fn="$(basename "$event" .json)"
  want="$(expected_status "$fn")"
  output="$(cargo lambda invoke --invoke-address 127.0.0.1 --invoke-port "$API_PORT" "$fn" --data-file "$event" 2>&1)" || true
  got="$(printf '%s' "$output" | python3 -c 'import json,sys; print(json.load(sys.stdin)["statusCode"])' 2>/dev/null || echo "no response")"
  if [ "$got" = "$want" ]; then
    echo "invoke $fn: $got ok"
    passed=$((passed + 1))
  else
    echo "invoke $fn: expected $want, got $got: $output" >&2
    failed=$((failed + 1))
  fi
done
echo "invoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
