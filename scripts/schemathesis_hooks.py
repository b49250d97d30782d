"""Schemathesis hooks for the run against the local stack (scripts/e2e.sh).

`cargo lambda watch` answers a request whose JSON body is not UTF-8 with its
own 500 before any function runs, so such bodies, which schemathesis sends
among its malformed ones, would only test the local router. They are skipped
here; the functions' own answer to them (400, as FastAPI) is tested in
shared/tests/it/validation.rs and, through the local stack's Invoke API, in
devstack/tests/it/e2e.rs (docs/development.md, "Local stack vs deployed").
Every other malformed body is still sent.
"""

import schemathesis


@schemathesis.hook
def filter_body(context, body):
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True
