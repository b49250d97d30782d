#!/usr/bin/env bash
# `make deploy-check`: the deploy artifacts proven before they ship.
#
#   1. what `sam build` builds (scripts/sam-build.sh: release, arm64);
#   2. the template after SAM's transform (what CloudFormation receives,
#      scripts/sam_translate.py) checked against the code: environment,
#      policies, routes (shared/tests/it/deployed_template.rs);
#   3. every function's .aws-sam/build/<Id>/bootstrap started as Lambda
#      starts it, under qemu user-mode emulation, against a local Runtime
#      API and a local DynamoDB, in its deployed configuration, with its
#      sample event; its answer checked (coldstart --deploy-check). One
#      line per function: init ms, first answer ms, status.
#
# DEPLOY_CHECK_FUNCTIONS="get_task export_tasks": only those, built by
# `cargo lambda build --release --arm64 --bin ...` instead of a whole
# `sam build`, with the iteration profile (no LTO, 16 codegen units, in
# target/sam-fast: DEPLOY_BUILD=fast of scripts/sam-build.sh) unless
# DEPLOY_CHECK_PROFILE=release. What `make test` runs (README, "Deploying").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_sam
ensure_arm64_emulation

out=target/deploy-check
functions="${DEPLOY_CHECK_FUNCTIONS:-}"
if [ -z "$functions" ]; then
  scripts/sam-build.sh
  bootstrap_dir=""
else
  ensure_arm64_target
  if [ "${DEPLOY_CHECK_PROFILE:-fast}" = fast ]; then
    export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/sam-fast}"
  else
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/sam}"
  fi
  read -ra names <<< "$functions"
  echo "==> cargo lambda build --release --arm64 ${names[*]/#/--bin } in $CARGO_TARGET_DIR"
  started=$SECONDS
  cargo lambda build --release --arm64 "${names[@]/#/--bin=}"
  echo "==> built in $((SECONDS - started)) s"
  bootstrap_dir="$CARGO_TARGET_DIR/lambda"
  unset CARGO_TARGET_DIR CARGO_PROFILE_RELEASE_LTO CARGO_PROFILE_RELEASE_CODEGEN_UNITS
fi

echo "==> the template after SAM's transform"
"$TOOLS_VENV/bin/python" scripts/sam_translate.py "$out" $bootstrap_dir
DEPLOYED_TEMPLATE="$PWD/$out/template.json" cargo test --quiet --workspace --test it deployed_template -- --ignored

echo "==> each function as Lambda starts it (arm64 under qemu, deployed configuration)"
cargo run --quiet -p devstack --bin coldstart -- \
  --deploy-check "$out/functions.json" \
  --wrapper "qemu-aarch64-static -L /usr/aarch64-linux-gnu" \
  ${functions}
