#!/usr/bin/env bash
# `make test`'s check of `make route` / `make unroute` (docs/architecture.md, "Adding an
# endpoint"), in a scratch copy of the work tree (its tracked and untracked,
# not ignored, files; a git repository of its own) so this tree is never
# touched:
#
# 1. each refusal: a malformed name, method or path, a taken name, a taken
#    method + path, a dirty tree: non-zero exit, a message naming the
#    problem, and nothing changed;
# 2. route + unroute without cargo (two shapes that change existing router
#    lines): the copy is byte-identical afterwards;
# 3. `make route` of a write route with two path parameters, then the fast
#    checks on it: rustfmt, clippy of the touched crates, the consistency
#    tests (route table, least privilege, OpenAPI drift, deployment,
#    layers), the new handler's own tests (its sample event answers 200 with
#    the caller and the path; 401 without a caller), cfn-lint,
#    `sam validate --lint` and the pre-traffic hook's tests (an expected
#    answer for every sample event);
# 4. `make unroute`: the copy is byte-identical to the original.
#
# The copy builds into this tree's target directory (CARGO_TARGET_DIR) at a
# fixed path, so only `shared` and the new crate are compiled again.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_sam
started=$SECONDS
# Every build below lints (scripts/lib.sh), as make test's.
clippy_build_env

TARGET="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
SCRATCH="$TARGET/route-check/repo"
NAME=route_check_probe
rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
  if [ -e "$file" ]; then
    mkdir -p "$SCRATCH/$(dirname "$file")"
    cp -p "$file" "$SCRATCH/$file"
  fi
done
export CARGO_TARGET_DIR="$TARGET"
cd "$SCRATCH"
git init -q
git add -A
git -c user.name=route-check -c user.email=route-check@localhost commit -q -m original

failures=0
fail() {
  echo "route-check: FAILED: $*" >&2
  failures=$((failures + 1))
}

unchanged() {
  [ -z "$(git status --porcelain --untracked-files=all)" ]
}

# What the copy holds beyond its commit, to compare before and after.
state() {
  git status --porcelain --untracked-files=all
  git diff
}

# refused WORD ARGS...: make ARGS must fail, say WORD, and change nothing.
refused() {
  local word="$1"
  shift
  local output before
  before="$(state)"
  if output="$(make --no-print-directory "$@" 2>&1)"; then
    fail "make $* succeeded; it should refuse"
  elif ! grep -qi -- "$word" <<< "$output"; then
    fail "make $*: the message does not say \"$word\": $output"
  elif [ "$(state)" != "$before" ]; then
    fail "make $* refused but changed files: $(git status --porcelain)"
  else
    echo "refused as it should: make $*: $(grep -i -m1 -- "$word" <<< "$output")"
  fi
}

echo "==> make route refuses, changing nothing"
refused malformed route NAME=Bad-Name METHOD=GET PATH=/things
refused malformed route NAME=things METHOD=FETCH PATH=/things
refused malformed route NAME=things METHOD=get PATH=/things
refused malformed route NAME=things METHOD=GET PATH=things
refused malformed route NAME=things METHOD=GET PATH=/things//x
refused malformed route NAME=things METHOD=GET 'PATH=/things/{id'
refused malformed route NAME=things METHOD=GET 'PATH=/things/{Id}'
refused malformed route NAME=things METHOD=GET PATH=/things/
refused reserved route NAME=match METHOD=GET PATH=/things
refused taken route NAME=me METHOD=GET PATH=/things
refused taken route NAME=my_tasks METHOD=GET PATH=/tasks
refused taken route NAME=get_one METHOD=GET 'PATH=/tasks/{id}'
refused 'names it {task_id}' route NAME=notes METHOD=GET 'PATH=/tasks/{id}/notes'
refused malformed route NAME=things METHOD=GET PATH=/things STORAGE=admin
refused 'nothing to remove' unroute NAME=no_such_route
echo "# local edit" >> template.yaml
refused uncommitted route NAME=things METHOD=GET PATH=/things
git checkout -q -- template.yaml

echo "==> route + unroute (no cargo) leaves the copy byte-identical"
for args in "GET /tasks/stats none" "POST /me read" "DELETE /{thing} write"; do
  read -r method path storage <<< "$args"
  if ! ROUTE_OPENAPI=skip make --no-print-directory route NAME=probe_shape METHOD="$method" PATH="$path" STORAGE="$storage" > /dev/null; then
    fail "make route $method $path"
  fi
  make --no-print-directory unroute NAME=probe_shape > /dev/null || fail "make unroute after $method $path"
  unchanged || fail "route + unroute of $method $path left: $(git status --porcelain)"
done

echo "==> make route NAME=$NAME METHOD=PUT PATH=/tasks/{task_id}/labels/{label} STORAGE=write"
step_started=$SECONDS
make --no-print-directory route NAME="$NAME" METHOD=PUT 'PATH=/tasks/{task_id}/labels/{label}' STORAGE=write
echo "(make route: $((SECONDS - step_started)) s)"

check() {
  local what="$1"
  shift
  local step_started=$SECONDS
  if "$@"; then
    echo "ok: $what ($((SECONDS - step_started)) s)"
  else
    fail "$what"
  fi
}
check "cargo fmt --all --check" cargo fmt --all --check
# Clippy inside the build, as make lint runs it (clippy_build_env above),
# every build selecting the workspace as make test does (no recompiling).
check "clippy of the workspace with $NAME" cargo test --quiet --workspace --no-run
check "route table, least privilege, OpenAPI drift, deployment and layers tests" \
  cargo test --quiet --workspace --test it -- route_table:: least_privilege:: openapi:: deployment:: layers::
check "$NAME answers its sample event (its handler's tests)" \
  cargo test --quiet --workspace --lib "handlers::$NAME::"
check "cfn-lint template.yaml" cfn-lint template.yaml
check "sam validate --lint" sam_offline validate --lint --template template.yaml
check "the pre-traffic hook expects an answer of $NAME's sample event" python3 pipeline/pretraffic/test_hook.py

echo "==> make unroute NAME=$NAME"
make --no-print-directory unroute NAME="$NAME"
if unchanged; then
  echo "ok: the copy is byte-identical to the original"
else
  fail "after make unroute the copy differs: $(git status --porcelain --untracked-files=all)"
  git diff --stat >&2
fi

echo "route-check: $((SECONDS - started)) s, $failures failed"
[ "$failures" -eq 0 ]
