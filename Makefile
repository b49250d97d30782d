# The two commands of the README, and their parts.
SHELL := /bin/bash

.PHONY: dev token trace test prefetch-tools lint unit e2e openapi sam-build deploy-check deploy-check-ci template-check bench perf route unroute route-check

## make dev: the API on http://localhost:9000 with a local DynamoDB.
## make dev AUTH=token: callers named by bearer tokens from a local
## OpenID issuer (as deployed), instead of the X-User-Id header.
## Settings may also come from a .env file (docs/development.md, Local development).
dev:
	scripts/dev.sh

## make token USER=alice [KIND=expired|wrong-audience|wrong-issuer|unsigned|foreign-key|id-token|no-scope|future-iat]:
## prints an access token of the local issuer for `make dev AUTH=token`
## (valid for an hour; KIND: one the API must refuse).
KIND ?= valid
token:
	@source scripts/lib.sh && load_dotenv && \
	  cargo build --quiet --workspace --bin devstack && \
	  target/debug/devstack token "$(USER)" --kind "$(KIND)" --issuer-key .dev/issuer-key.der

## make trace [LAST=5]: the last requests of `make dev` as X-Ray trace
## trees (each function's segment, its DynamoDB calls, with timings).
LAST ?= 5
trace:
	@cargo build --quiet --workspace --bin devstack && \
	  target/debug/devstack trace --last "$(LAST)" --traces .dev/traces.jsonl

# Clippy runs inside the builds of `make test` and its steps:
# clippy-driver is the workspace's rustc wrapper (scripts/lib.sh,
# clippy_build_env), so the crates are linted as they are compiled for the
# tests and the dependency tree is compiled once, not once more in check
# mode. The same environment for every step, so none recompiles another's
# crates. (`make dev` builds without it.)
LINTED := test lint unit template-check route-check e2e deploy-check-ci openapi
$(LINTED): export RUSTC_WORKSPACE_WRAPPER := $(shell source scripts/lib.sh > /dev/null 2>&1 && clippy_driver)
$(LINTED): export CLIPPY_ARGS := $(shell source scripts/lib.sh > /dev/null 2>&1 && echo "$$CLIPPY_DENY_WARNINGS")

## make test: everything CI runs. route-check last: its scratch copy builds
## into this target directory with a probe route, so a step after it would
## rebuild the workspace's crates (37 s measured).
test: prefetch-tools lint unit template-check e2e deploy-check-ci route-check

# The Python tools, Chromium and qemu install in the background while
# cargo builds, and deploy-check-ci's arm64 build runs beside the other
# steps at the lowest priority (scripts/lib.sh, prefetch_tools); each
# step waits for its own.
prefetch-tools:
	@source scripts/lib.sh && prefetch_tools

lint:
	cargo fmt --all --check
	@# clippy -D warnings on every target (lib, bins, tests, benches), in
	@# the build the tests then run (LINTED above)
	cargo test --workspace --all-targets --no-run
	source scripts/lib.sh && ensure_lint_tools && cfn-lint template.yaml pipeline/oidc-role.yaml && openapi-spec-validator openapi.json
	source scripts/lib.sh && ensure_sam && sam_offline validate --lint --template template.yaml
	@# the CI and deploy workflows against GitHub's schema (docs/pipeline.md)
	source scripts/lib.sh && ensure_lint_tools && check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

# The store contract also runs on moto's server (devstack's
# store_contract::on_moto): installed first, pinned (scripts/lib.sh).
# Eight test threads on two cores: most tests wait (SDK backoff, fault
# timeouts, batching windows, a stream's heartbeat) rather than compute;
# devstack's took 47 s with the default two, 17-21 s with eight.
unit:
	source scripts/lib.sh && ensure_moto
	cargo test --workspace -- --test-threads=8

e2e:
	scripts/e2e.sh

## make route-check: make route and make unroute in a scratch copy (the
## checks a new endpoint must pass, then byte-identical after unroute).
route-check:
	scripts/route-check.sh

## make openapi: regenerate the committed openapi.json from the code.
openapi:
	UPDATE_OPENAPI=1 cargo test --workspace --test it openapi::

## make sam-build: the deploy build (`sam build`: cargo lambda, release,
## arm64) of every function, checked and timed. Not in `make test`: a cold
## build takes minutes (docs/operations.md, "Deploying").
sam-build:
	scripts/sam-build.sh

## make deploy-check: `sam build` (as make sam-build), the template after
## SAM's transform checked against the code, then every function's
## .aws-sam/build/<Function>/bootstrap started as Lambda would (arm64 under
## qemu, deployed configuration, local Runtime API and DynamoDB) with its
## sample event, its answer checked. Minutes: not in `make test`.
deploy-check:
	scripts/deploy-check.sh

## make deploy-check-ci (the last step of `make test`): the same emulated
## path for one storage function and one streamed function, get_task and
## export_tasks, built alone by cargo lambda with the release profile
## unoptimised (docs/operations.md, "Deploying").
deploy-check-ci:
	source scripts/lib.sh && "$${DEPLOY_CHECK_CI[@]}" scripts/deploy-check.sh

## The template after SAM's transform (offline) against the code, and the
## pre-traffic hook's verdicts.
template-check:
	source scripts/lib.sh && ensure_sam && "$$TOOLS_VENV/bin/python" scripts/sam_translate.py target/deploy-check
	@# CodeDeploy's pre-traffic hook against stub clients (docs/pipeline.md)
	python3 pipeline/pretraffic/test_hook.py
	@# the deploy role of pipeline/oidc-role.yaml against CloudFormation's handlers
	source scripts/lib.sh && "$$TOOLS_VENV/bin/python" pipeline/check_deploy_role.py target/deploy-check/template.json
	DEPLOYED_TEMPLATE=$$PWD/target/deploy-check/template.json cargo test --workspace --test it deployed_template -- --ignored

## make bench: the warm path per route (criterion) with allocations.
bench:
	cargo bench -p shared --bench hot_path

## make perf: each function's release binary started as Lambda would (local
## Runtime API + embedded DynamoDB): init, first and warm latency, peak RSS.
perf:
	cargo build --release --bins
	cargo run -p devstack --bin coldstart

## make route NAME=<snake_name> METHOD=<GET|POST|PUT|PATCH|DELETE> PATH=<path> [STORAGE=none|read|write]:
## a new endpoint, everywhere it must be declared (docs/architecture.md, "Adding an
## endpoint"). make unroute NAME=<snake_name> removes it again.
## `PATH=` on make's command line replaces PATH in the recipes' environment
## too, so they take the real one back from make's own environment.
REAL_PATH := $(shell printenv PATH)
RESTORE_PATH = PATH="$$(while IFS= read -r -d '' kv; do [[ $$kv == PATH=* ]] && printf '%s' "$${kv\#PATH=}"; done < /proc/$$PPID/environ 2>/dev/null)"; PATH="$${PATH:-$(REAL_PATH)}"; export PATH

route:
	@$(RESTORE_PATH); python3 scripts/route.py add "$(NAME)" "$(METHOD)" '$(PATH)' "$(STORAGE)"

unroute:
	@$(RESTORE_PATH); python3 scripts/route.py remove "$(NAME)"
