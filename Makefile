# The two commands of the README, and their parts.
SHELL := /bin/bash

.PHONY: dev test lint unit e2e

## make dev: the API on http://localhost:9000 with a local DynamoDB.
dev:
	scripts/dev.sh

## make test: everything CI runs.
test: lint unit e2e

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	source scripts/lib.sh && ensure_lint_tools && cfn-lint template.yaml

unit:
	cargo test --workspace

e2e:
	scripts/e2e.sh
