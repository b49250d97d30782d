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
export PATH="$PWD/$TOOLS_VENV/bin:$PATH"

ensure_tools() {
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
  if ! "$TOOLS_VENV/bin/cfn-lint" --version 2>/dev/null | grep -q "$CFN_LINT_VERSION"; then
    echo "==> installing cfn-lint $CFN_LINT_VERSION (PyPI)"
    "$TOOLS_VENV/bin/pip" install --quiet "cfn-lint==$CFN_LINT_VERSION"
  fi
  ensure_pip_package openapi-spec-validator "$OPENAPI_SPEC_VALIDATOR_VERSION"
}

# ensure_pip_package NAME VERSION: NAME==VERSION in the tools venv.
ensure_pip_package() {
  local name="$1" version="$2"
  if [ "$("$TOOLS_VENV/bin/python" -c "from importlib.metadata import version; print(version('$name'))" 2>/dev/null)" != "$version" ]; then
    echo "==> installing $name $version (PyPI)"
    "$TOOLS_VENV/bin/pip" install --quiet "$name==$version"
  fi
}

# What the end-to-end run checks the API's documentation with: the OpenAPI
# validator, schemathesis, and a headless Chromium (Debian's package; the
# first install takes a minute or two and needs root, as on CI).
ensure_api_test_tools() {
  ensure_tools
  ensure_pip_package openapi-spec-validator "$OPENAPI_SPEC_VALIDATOR_VERSION"
  ensure_pip_package schemathesis "$SCHEMATHESIS_VERSION"
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

# The environment every function gets locally: the local DynamoDB, dummy
# credentials, and the X-User-Id header accepted as the caller's identity.
# CORS_ALLOWED_ORIGINS, if set in the caller's shell, passes through (unset:
# no CORS, as deployed with the template's default AllowedOrigins).
export_local_env() {
  local dynamodb_port="$1"
  export TABLE_NAME=tasks
  export IDENTITY_MODE=header
  export AWS_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=local
  export AWS_SECRET_ACCESS_KEY=local
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$dynamodb_port"
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
