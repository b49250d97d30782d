# The two commands of the README, and their parts.
SHELL := /bin/bash

.PHONY: dev token test lint unit e2e openapi sam-build bench perf

## make dev: the API on http://localhost:9000 with a local DynamoDB.
## make dev AUTH=token: callers named by bearer tokens from a local
## OpenID issuer (as deployed), instead of the X-User-Id header.
## Settings may also come from a .env file (README, Local development).
dev:
	scripts/dev.sh

## make token USER=alice [KIND=expired|wrong-audience|wrong-issuer|unsigned|foreign-key]:
## prints an access token of the local issuer for `make dev AUTH=token`
## (valid for an hour; KIND: one the API must refuse).
KIND ?= valid
token:
	@source scripts/lib.sh && load_dotenv && \
	  cargo build --quiet -p devstack --bin devstack && \
	  target/debug/devstack token "$(USER)" --kind "$(KIND)" --issuer-key .dev/issuer-key.der

## make test: everything CI runs.
test: lint unit e2e

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

## make bench: the warm path per route (criterion) with allocations.
bench:
	cargo bench -p shared --bench hot_path

## make perf: each function's release binary started as Lambda would (local
## Runtime API + embedded DynamoDB): init, first and warm latency, peak RSS.
perf:
	cargo build --release --bins
	cargo run -p devstack --bin coldstart
