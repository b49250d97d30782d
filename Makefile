# The two commands of the README, and their parts.
SHELL := /bin/bash

.PHONY: dev test lint unit e2e openapi sam-build deploy-check deploy-check-ci template-check bench perf

## make dev: the API on http://localhost:9000 with a local DynamoDB.
dev:
	scripts/dev.sh

## make test: everything CI runs.
test: lint unit e2e template-check deploy-check-ci

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	source scripts/lib.sh && ensure_lint_tools && cfn-lint template.yaml && openapi-spec-validator openapi.json
	source scripts/lib.sh && ensure_sam && sam_offline validate --lint --template template.yaml

unit:
	cargo test --workspace

e2e:
	scripts/e2e.sh

## make openapi: regenerate the committed openapi.json from the code.
openapi:
	UPDATE_OPENAPI=1 cargo test -p shared --test it openapi::

## make sam-build: the deploy build (`sam build`: cargo lambda, release,
## arm64) of every function, checked and timed. Not in `make test`: a cold
## build takes minutes (README, "Deploying").
sam-build:
	scripts/sam-build.sh

## make deploy-check: `sam build` (as make sam-build), the template after
## SAM's transform checked against the code, then every function's
## .aws-sam/build/<Function>/bootstrap started as Lambda would (arm64 under
## qemu, deployed configuration, local Runtime API and DynamoDB) with its
## sample event, its answer checked. Minutes: not in `make test`.
deploy-check:
	scripts/deploy-check.sh

## In `make test`: the same emulated path for one storage function and one
## streamed function, built alone with cargo lambda (README, "Deploying").
deploy-check-ci:
	DEPLOY_CHECK_FUNCTIONS="get_task export_tasks" scripts/deploy-check.sh

## The template after SAM's transform (offline) against the code.
template-check:
	source scripts/lib.sh && ensure_sam && "$$TOOLS_VENV/bin/python" scripts/sam_translate.py target/deploy-check
	DEPLOYED_TEMPLATE=$$PWD/target/deploy-check/template.json cargo test -p shared --test it deployed_template

## make bench: the warm path per route (criterion) with allocations.
bench:
	cargo bench -p shared --bench hot_path

## make perf: each function's release binary started as Lambda would (local
## Runtime API + embedded DynamoDB): init, first and warm latency, peak RSS.
perf:
	cargo build --release --bins
	cargo run -p devstack --bin coldstart
