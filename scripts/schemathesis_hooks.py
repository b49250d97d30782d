"""Schemathesis hooks for the run against the local stack (scripts/e2e.sh).

None today. Bodies that are not UTF-8, which schemathesis sends among its
malformed ones, used to be skipped here: `cargo lambda watch` answers them
with its own 500 before any function runs. The local stack's front door
(devstack's API proxy, devstack/src/api_proxy.rs) now hands them to the
functions as API Gateway does, so they are sent and must get the
functions' 400, as deployed (docs/development.md, "Local stack vs
deployed"). Hooks for this run go here (SCHEMATHESIS_HOOKS).
"""
