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
# `cargo lambda build --release --arm64 --bin ...` (the command SAM runs)
# instead of a whole `sam build`, with DEPLOY_CHECK_PROFILE's settings
# given to cargo as CARGO_PROFILE_RELEASE_* variables, each in a target
# directory of its own (switching them rebuilds every dependency):
#   fast     the iteration profile (no LTO, 16 codegen units; target/sam-fast,
#            DEPLOY_BUILD=fast of scripts/sam-build.sh) - the default;
#   ci       what `make test` runs (make deploy-check-ci): the release
#            profile unoptimised (opt-level 0, no LTO, 256 codegen units;
#            target/deploy-check-ci): the same cross-compilation, linker,
#            TLS, runtime and deployed configuration, for the least
#            build time (docs/operations.md, "Deploying");
#   release  the production profile (target/sam).
# --build-only: the build step alone (make test starts it in the
# background at its beginning, scripts/lib.sh prefetch_tools; the check
# at the end finds it done, or waits on cargo's lock until it is).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

build_only=false
if [ "${1:-}" = --build-only ]; then build_only=true; fi

out=target/deploy-check
functions="${DEPLOY_CHECK_FUNCTIONS:-}"
if [ -z "$functions" ]; then
  $build_only && { echo "--build-only needs DEPLOY_CHECK_FUNCTIONS" >&2; exit 2; }
  ensure_sam
  scripts/sam-build.sh
  bootstrap_dir=""
else
  ensure_tools
  ensure_arm64_target
  case "${DEPLOY_CHECK_PROFILE:-fast}" in
    fast)
      export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
      target_dir="$PWD/target/sam-fast"
      ;;
    ci)
      export CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256
      target_dir="$PWD/target/deploy-check-ci"
      ;;
    release) target_dir="$PWD/target/sam" ;;
    *) echo "DEPLOY_CHECK_PROFILE: fast, ci or release" >&2; exit 2 ;;
  esac
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$target_dir}"
  read -ra names <<< "$functions"
  echo "==> cargo lambda build --release --arm64 ${names[*]/#/--bin } (${DEPLOY_CHECK_PROFILE:-fast}) in $CARGO_TARGET_DIR"
  started=$SECONDS
  # Not linted (make lint does that for the host build), whatever make
  # test exported: the same arm64 build in the background and at the end.
  env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo lambda build --release --arm64 "${names[@]/#/--bin=}"
  echo "==> built in $((SECONDS - started)) s"
  bootstrap_dir="$CARGO_TARGET_DIR/lambda"
  unset CARGO_TARGET_DIR CARGO_PROFILE_RELEASE_OPT_LEVEL CARGO_PROFILE_RELEASE_LTO CARGO_PROFILE_RELEASE_CODEGEN_UNITS
  $build_only && exit 0
  ensure_sam
fi
with_tools_lock ensure_arm64_emulation

echo "==> the template after SAM's transform"
"$TOOLS_VENV/bin/python" scripts/sam_translate.py "$out" $bootstrap_dir
DEPLOYED_TEMPLATE="$PWD/$out/template.json" cargo test --quiet --workspace --test it deployed_template -- --ignored

echo "==> each function as Lambda starts it (arm64 under qemu, deployed configuration)"
# Built as `cargo test --workspace` builds it (the same features: nothing
# compiled twice in make test).
cargo build --quiet --workspace --bins --tests
target/debug/coldstart \
  --deploy-check "$out/functions.json" \
  --wrapper "qemu-aarch64-static -L /usr/aarch64-linux-gnu" \
  ${functions}
