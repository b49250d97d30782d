#!/usr/bin/env bash
# `make sam-build`: what `sam build` makes for a deploy, offline: every
# function cross-compiled by cargo lambda (release, arm64) into
# .aws-sam/build/<Function>/bootstrap. Checks there is one aarch64 binary
# per function of template.yaml and prints the time and the sizes.
# Not part of `make test`: a cold build takes minutes (see docs/operations.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_sam
ensure_arm64_target

# A target directory of its own: cross builds share cargo's lock on the
# host artifacts with the dev and bench builds, so in target/ this would
# wait for `make dev` (and make it wait). A plain `sam build` uses target/.
#
# DEPLOY_BUILD=fast: the iteration mode (docs/operations.md, "Deploying"): the same
# build without LTO and with 16 codegen units, given to cargo (and so to
# SAM's own cargo lambda runs) as CARGO_PROFILE_RELEASE_* variables, in a
# target directory of its own (switching LTO mode rebuilds every
# dependency). Minutes faster after a change, binaries ~35% larger (some
# over the 6 MB target): for a dev stack, not for production.
case "${DEPLOY_BUILD:-release}" in
  release) default_target_dir="$PWD/target/sam" ;;
  fast)
    export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
    default_target_dir="$PWD/target/sam-fast"
    ;;
  *) echo "DEPLOY_BUILD: release or fast" >&2; exit 2 ;;
esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$default_target_dir}"

# SAM runs one `cargo lambda build --release --arm64 --bin <f>` per
# function, one after the other: fourteen serial cargo runs, each ending in
# a fat-LTO link that uses one core. The same command for all fourteen
# binaries at once lets cargo link two at a time (the dependencies are
# compiled once either way); SAM's own runs then find every binary fresh
# and only copy it. Same flags and target directory as SAM's, so nothing is
# built twice and what ships is exactly what `sam build` would have built.
# SAM_BUILD_PREBUILD=0: plain `sam build` (to compare).
mapfile -t binaries < <(sed -n 's/^        Binary: \(\w\+\)$/\1/p' template.yaml)
started=$SECONDS
if [ "${SAM_BUILD_PREBUILD:-1}" = 1 ]; then
  echo "==> cargo lambda build --release --arm64 (${#binaries[@]} binaries) in $CARGO_TARGET_DIR"
  nice -n "${SAM_BUILD_NICE:-0}" cargo lambda build --release --arm64 "${binaries[@]/#/--bin=}"
  echo "==> cargo lambda build: $((SECONDS - started)) s"
fi
echo "==> sam build (cargo lambda, release, arm64) in $CARGO_TARGET_DIR"
sam_started=$SECONDS
# --parallel: SAM's fifteen `cargo lambda build` runs only find their
# binary fresh and copy it; side by side they take 8 s instead of 12.
nice -n "${SAM_BUILD_NICE:-0}" env AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" SAM_CLI_TELEMETRY=0 sam build --parallel "$@"
echo "==> sam build: $((SECONDS - sam_started)) s (total $((SECONDS - started)) s)"

# One aarch64 ELF bootstrap per AWS::Serverless::Function.
python3 - <<'PY'
import os, re, sys
ids = re.findall(r"^  (\w+):\n    Type: AWS::Serverless::Function$", open("template.yaml").read(), re.M)
missing = []
for fid in ids:
    path = f".aws-sam/build/{fid}/bootstrap"
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except FileNotFoundError:
        missing.append(path)
        continue
    aarch64 = head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 0xB7
    print(f"{path:48} {os.path.getsize(path):>10,} bytes{'' if aarch64 else '  NOT aarch64'}")
    if not aarch64:
        missing.append(path)
# CodeDeploy's pre-traffic hook (pipeline/pretraffic/Makefile): its code
# and every function's sample event.
events = sorted(f for f in os.listdir("events") if f.endswith(".json"))
hook = ".aws-sam/build/PreTrafficHook"
shipped = sorted(os.listdir(f"{hook}/events")) if os.path.isdir(f"{hook}/events") else []
if not os.path.isfile(f"{hook}/hook.py") or shipped != events:
    missing.append(f"{hook}: hook.py and events/ ({len(shipped)} of {len(events)} samples)")
else:
    print(f"{hook:48} hook.py and {len(shipped)} sample events")
if missing or not ids:
    sys.exit(f"missing or wrong: {missing}")
print(f"{len(ids)} functions, one aarch64 bootstrap each")
PY
