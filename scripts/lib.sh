# Shared by the scripts behind `make dev` and `make test`: tool installs,
# the local environment of the functions, and starting/stopping the stack.
# Source it from the repository root.

# Python tools live in a project venv, pinned, so they never depend on (or
# disturb) what the machine's Python has.
TOOLS_VENV=".dev/tools"
CARGO_LAMBDA_VERSION="1.9.2"
CFN_LINT_VERSION="1.58.0"
SAM_CLI_VERSION="1.170.0"
OPENAPI_SPEC_VALIDATOR_VERSION="0.9.0"
SCHEMATHESIS_VERSION="4.32.5"
OPENAPI_PYTHON_CLIENT_VERSION="0.29.0"
# openapi-python-client formats what it generates with ruff (and warns
# without it).
RUFF_VERSION="0.14.5"
# GitHub workflow files against GitHub's schema (vendored in the package:
# --builtin-schema vendor.github-workflows), offline. 0.37.4 accepts
# the click 8.1.8 that aws-sam-cli pins (0.39.0 needs click 8.5).
CHECK_JSONSCHEMA_VERSION="0.37.4"
# scripts/smoke.py's sign-in to a deployed stack: SRP, the only flow the
# app client allows (README, "Calling the deployed API").
PYCOGNITO_VERSION="2024.5.1"
# Drives Debian's Chromium (no browser download) for the EventSource check.
PLAYWRIGHT_VERSION="1.56.0"
# A second DynamoDB implementation for the store contract (devstack's
# tests, store_contract::on_moto; docs/faults.md): moto's server, one
# request at a time.
MOTO_VERSION="5.2.5"
export PATH="$PWD/$TOOLS_VENV/bin:$PATH"

# Every install below holds .dev/tools.lock while it checks and installs,
# so `make test` can install the tools in the background while cargo
# builds (prefetch_tools) and a step that needs one simply waits for it.
with_tools_lock() {
  mkdir -p .dev
  (
    flock 9
    "$@"
  ) 9> .dev/tools.lock
}

ensure_tools() {
  with_tools_lock ensure_tools_unlocked
}

ensure_tools_unlocked() {
  if [ ! -x "$TOOLS_VENV/bin/pip" ]; then
    echo "==> creating $TOOLS_VENV (Python tools for the local stack)"
    python3 -m venv "$TOOLS_VENV"
  fi
  if ! "$TOOLS_VENV/bin/cargo-lambda" lambda --version 2>/dev/null | grep -q "$CARGO_LAMBDA_VERSION"; then
    echo "==> installing cargo-lambda $CARGO_LAMBDA_VERSION (PyPI)"
    "$TOOLS_VENV/bin/pip" install --quiet "cargo-lambda==$CARGO_LAMBDA_VERSION"
  fi
}

ensure_lint_tools() {
  ensure_tools
  ensure_pip_package cfn-lint "$CFN_LINT_VERSION"
  ensure_pip_package openapi-spec-validator "$OPENAPI_SPEC_VALIDATOR_VERSION"
  ensure_pip_package check-jsonschema "$CHECK_JSONSCHEMA_VERSION"
}

# ensure_pip_package NAME VERSION: NAME==VERSION in the tools venv. NAME
# may name extras (`moto[server]`); the installed version is checked
# without them.
ensure_pip_package() {
  with_tools_lock ensure_pip_package_unlocked "$@"
}

ensure_pip_package_unlocked() {
  local name="$1" version="$2"
  local dist="${name%%\[*}"
  if [ "$("$TOOLS_VENV/bin/python" -c "from importlib.metadata import version; print(version('$dist'))" 2>/dev/null)" != "$version" ]; then
    echo "==> installing $name $version (PyPI)"
    "$TOOLS_VENV/bin/pip" install --quiet "$name==$version"
  fi
}

# moto's DynamoDB server (`moto_server`), for the store contract on moto.
# `moto[server]`: the extra brings the server's web stack (flask).
ensure_moto() {
  ensure_tools
  ensure_pip_package "moto[server]" "$MOTO_VERSION"
}

# What the end-to-end run checks the API's documentation with: the OpenAPI
# validator, schemathesis, and a headless Chromium (Debian's package; the
# first install takes a minute or two and needs root, as on CI).
ensure_api_test_tools() {
  ensure_tools
  ensure_pip_package openapi-spec-validator "$OPENAPI_SPEC_VALIDATOR_VERSION"
  ensure_pip_package schemathesis "$SCHEMATHESIS_VERSION"
  ensure_pip_package openapi-python-client "$OPENAPI_PYTHON_CLIENT_VERSION"
  ensure_pip_package ruff "$RUFF_VERSION"
  ensure_pip_package playwright "$PLAYWRIGHT_VERSION"
  with_tools_lock ensure_chromium
}

ensure_chromium() {
  if ! command -v chromium > /dev/null; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
      echo "chromium is missing: install Debian's chromium package (apt-get install chromium)" >&2
      return 1
    fi
    echo "==> installing chromium (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
  fi
}

# AWS SAM CLI, for `sam validate --lint` (make lint) and `sam build`
# (make sam-build). In the venv, where its pinned botocore cannot disturb
# a machine-wide awscli.
ensure_sam() {
  ensure_lint_tools
  ensure_pip_package aws-sam-cli "$SAM_CLI_VERSION"
}

# scripts/smoke.py against a deployed stack: boto3 (with the SAM CLI) and
# pycognito. Against the local stack (--local) it needs neither.
ensure_smoke_tools() {
  ensure_sam
  ensure_pip_package pycognito "$PYCOGNITO_VERSION"
}

# The Rust target of the deploy build (sam build / cargo lambda --arm64).
ensure_arm64_target() {
  if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    echo "==> adding the Rust target aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu
  fi
}

# Running the arm64 binaries here: qemu user-mode emulation and the arm64
# glibc (Debian packages; needs root and apt, as on CI).
ensure_arm64_emulation() {
  if command -v qemu-aarch64-static > /dev/null && [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get > /dev/null; then
    echo "qemu-aarch64-static is missing: apt-get install qemu-user-static libc6-arm64-cross" >&2
    return 1
  fi
  echo "==> installing qemu-user-static libc6-arm64-cross (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static libc6-arm64-cross > /dev/null
}

# sam, offline: a dummy region (nothing is deployed or called), no telemetry.
sam_offline() {
  AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" SAM_CLI_TELEMETRY=0 sam "$@"
}

# A free TCP port on the loopback interface.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The local app client id: JWT_AUDIENCE in token mode, the tokens'
# client_id (devstack's issuer::DEFAULT_AUDIENCE).
LOCAL_AUDIENCE="task-api-local"

# export_local_env DYNAMODB_PORT [AUTH [ISSUER_URL]]: the environment every
# function gets locally.
#
# Storage, by DYNAMODB:
# - `local` (the default): the local DynamoDB on port $1, dummy credentials,
#   table `tasks`. Nothing leaves the machine.
# - `aws`: a real table (TABLE_NAME, required) with the developer's own AWS
#   credentials: those of AWS_PROFILE (or the default profile), resolved
#   once by botocore as the AWS CLI would (static keys, SSO after
#   `aws sso login`, assume-role, credential_process) and exported as
#   temporary keys into this process's environment only: nothing is
#   written anywhere. The functions build their client from the
#   environment (docs/development.md, "AWS credentials"), so they never refresh: when
#   the keys expire (AWS_CREDENTIAL_EXPIRATION), restart `make dev`.
#   Region: AWS_REGION, else the profile's. No endpoint.
#
# Who the caller is, by AUTH: `header` (the default): the X-User-Id header
# (IDENTITY_MODE=header). `token`: as deployed, a bearer token checked
# against the local issuer at ISSUER_URL (JWT_ISSUER, JWT_AUDIENCE; no
# IDENTITY_MODE).
#
# CORS_ALLOWED_ORIGINS, if set in the caller's shell, passes through (unset:
# no CORS, as deployed with the template's default AllowedOrigins).
export_local_env() {
  local dynamodb_port="$1" auth="${2:-header}" issuer="${3:-}"
  case "${DYNAMODB:-local}" in
    local)
      export TABLE_NAME=tasks
      export AWS_REGION=us-east-1
      export AWS_ACCESS_KEY_ID=local
      export AWS_SECRET_ACCESS_KEY=local
      unset AWS_SESSION_TOKEN
      export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$dynamodb_port"
      ;;
    aws)
      if [ -z "${TABLE_NAME:-}" ]; then
        echo "DYNAMODB=aws needs TABLE_NAME: the real table (the stack's TableName output)" >&2
        return 1
      fi
      export TABLE_NAME
      unset AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL
      export_profile_credentials || return 1
      ;;
    *)
      echo "DYNAMODB must be local or aws (got ${DYNAMODB})" >&2
      return 1
      ;;
  esac
  case "$auth" in
    header)
      export IDENTITY_MODE=header
      unset JWT_ISSUER JWT_AUDIENCE JWT_SCOPES
      ;;
    token)
      unset IDENTITY_MODE
      export JWT_ISSUER="$issuer"
      export JWT_AUDIENCE="${JWT_AUDIENCE:-$LOCAL_AUDIENCE}"
      # The scope the local issuer's access tokens carry, as Cognito's
      # (devstack/src/issuer.rs); the template's JwtScope deployed.
      export JWT_SCOPES="${JWT_SCOPES:-aws.cognito.signin.user.admin}"
      ;;
    *)
      echo "AUTH must be header or token (got \"$auth\")" >&2
      return 1
      ;;
  esac
}

# load_dotenv [FILE]: exports the variables of FILE (default .env, at the
# repository root) that the shell does not set already: what is exported
# in the shell wins, as with the seed's settings. Lines are NAME=value,
# optionally prefixed with `export`; `#` starts a comment line; a value may
# be quoted ('...' or "...", taken literally: no expansion). Nothing in
# the file is run.
load_dotenv() {
  local file="${1:-.env}" line name value n=0
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line="${line%$'\r'}"
    line="${line#"${line%%[![:space:]]*}"}"
    case "$line" in '' | '#'*) continue ;; esac
    line="${line#export }"
    name="${line%%=*}"
    name="${name%"${name##*[![:space:]]}"}"
    if [[ "$line" != *=* || ! "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
      echo "$file:$n: not NAME=value, ignored" >&2
      continue
    fi
    value="${line#*=}"
    value="${value#"${value%%[![:space:]]*}"}"
    value="${value%"${value##*[![:space:]]}"}"
    if [[ ${#value} -ge 2 && ( "$value" == \"*\" || "$value" == \'*\' ) ]]; then
      value="${value:1:${#value}-2}"
    fi
    if [ -z "${!name+set}" ]; then
      export "$name=$value"
    fi
  done < "$file"
}

# What export_profile_credentials runs: botocore's credential chain, the
# AWS CLI's, printing NAME=value lines on stdout (a pipe, never a file).
PROFILE_CREDENTIALS_PY='
import sys
import botocore.session
from botocore.exceptions import BotoCoreError
session = botocore.session.Session()
try:
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials() if credentials else None
except BotoCoreError as error:
    sys.exit(f"AWS credentials: {error} (for SSO: aws sso login)")
if frozen is None:
    sys.exit("no AWS credentials found: set AWS_PROFILE (for SSO, after aws sso login)")
print(f"AWS_ACCESS_KEY_ID={frozen.access_key}")
print(f"AWS_SECRET_ACCESS_KEY={frozen.secret_key}")
if frozen.token:
    print(f"AWS_SESSION_TOKEN={frozen.token}")
expiry = getattr(credentials, "_expiry_time", None)
if expiry is not None:
    print(f"AWS_CREDENTIAL_EXPIRATION={expiry.isoformat()}")
region = session.get_config_variable("region")
if region:
    print(f"PROFILE_REGION={region}")
'

# Exports the developer's AWS credentials (AWS_PROFILE's, or the default
# chain's) and region into this shell's environment, and nothing else.
# botocore comes with SAM in the tools venv (ensure_sam).
export_profile_credentials() {
  if ! "$TOOLS_VENV/bin/python" -c 'import botocore' 2> /dev/null; then
    ensure_sam
  fi
  local resolved name value
  resolved="$("$TOOLS_VENV/bin/python" -c "$PROFILE_CREDENTIALS_PY")" || return 1
  unset AWS_SESSION_TOKEN AWS_CREDENTIAL_EXPIRATION
  while IFS='=' read -r name value; do
    case "$name" in
      AWS_ACCESS_KEY_ID | AWS_SECRET_ACCESS_KEY | AWS_SESSION_TOKEN | AWS_CREDENTIAL_EXPIRATION)
        export "$name=$value"
        ;;
      PROFILE_REGION) export AWS_REGION="${AWS_REGION:-$value}" ;;
    esac
  done < <(printf '%s\n' "$resolved")
  if [ -z "${AWS_REGION:-}" ]; then
    echo "DYNAMODB=aws needs a region: AWS_REGION, or region in the profile" >&2
    return 1
  fi
}

# wait_for_http URL SECONDS: until URL answers any HTTP status.
wait_for_http() {
  local url="$1" deadline=$((SECONDS + $2))
  until curl -s -o /dev/null "$url"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "timed out waiting for $url" >&2
      return 1
    fi
    sleep 0.5
  done
}

# Stops a process started with setsid, with everything it started.
stop_group() {
  local pid="$1"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 20); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

# Every tool `make test` uses, installed in the background (each install
# under the lock), while the first cargo build keeps the two cores busy:
# the steps that need a tool wait for it. Output goes to .dev/tools.log.
# Then, at the lowest priority, the arm64 build of make deploy-check-ci
# (its own target directory), so it uses what the foreground steps leave
# of the two cores (e2e mostly waits); its output goes to
# .dev/deploy-check-build.log, and make deploy-check-ci at the end finds
# the binaries built (or waits on cargo's lock for them).
prefetch_tools() {
  mkdir -p .dev
  (
    ensure_moto && ensure_sam && ensure_api_test_tools && with_tools_lock ensure_arm64_emulation
  ) > .dev/tools.log 2>&1 &
  (
    "${DEPLOY_CHECK_CI[@]}" nice -n 19 scripts/deploy-check.sh --build-only
  ) > .dev/deploy-check-build.log 2>&1 &
}

# Clippy inside the build (make lint; Makefile, LINTED): clippy-driver as
# the workspace's rustc wrapper, which is how `cargo clippy` runs it under
# `cargo check`, so the workspace's crates are linted while they are
# compiled for the tests and the dependencies are compiled once (a separate
# `cargo clippy` compiles every dependency again in check mode: about three
# minutes on two cores). CLIPPY_ARGS is how cargo-clippy hands clippy-driver
# its arguments (`-D warnings`), each followed by __CLIPPY_HACKERY__.
clippy_driver() {
  rustup which clippy-driver 2> /dev/null || command -v clippy-driver
}
CLIPPY_DENY_WARNINGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
clippy_build_env() {
  RUSTC_WORKSPACE_WRAPPER="$(clippy_driver)"
  export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS="$CLIPPY_DENY_WARNINGS"
}

# make deploy-check-ci: one storage function and one streamed function,
# the release profile unoptimised (scripts/deploy-check.sh).
DEPLOY_CHECK_CI=(env DEPLOY_CHECK_FUNCTIONS="get_task export_tasks" DEPLOY_CHECK_PROFILE=ci)
