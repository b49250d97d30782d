#!/usr/bin/env python3
"""The smoke test of a running Task API (docs/pipeline.md, "Smoke test").

Deployed (the deploy workflow, after `sam deploy` to staging):

    smoke.py --stack task-api-staging [--region R] [--health-only]

reads the stack's outputs (ApiUrl, ExportTasksUrl, UserPoolId,
UserPoolClientId), creates a throw-away user in the stack's pool
(AdminCreateUser + AdminSetUserPassword) and signs it in with SRP, the only
flow the app client allows (pycognito, as the README's "Calling the
deployed API"), runs the checks with its access token, and deletes the user
afterwards whatever happened. --health-only (prod): GET /health only, no
user.

Local (scripts/e2e.sh, in `make test`, so the script never goes stale):

    smoke.py --local http://127.0.0.1:PORT --issuer-key .dev/issuer-key.der

the same checks against the local stack in token mode: "creating the
user" is minting a token of the local issuer for a fresh user id
(`devstack token`), and the streamed routes are on the API's own origin.

The checks: GET /health; GET /me is the user; no token is a 401; a task
created, read, listed, patched (If-Match), exported (CSV, through the
export's URL) and deleted (then 404); a feed ticket (POST
/tasks/events/tickets) whose URL opens the live feed, of which the first
Server-Sent Events bytes are read. Standard library only, plus boto3 and
pycognito in deployed mode (scripts/lib.sh, ensure_smoke_tools).
"""

import argparse
import base64
import json
import secrets
import string
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

TIMEOUT = 20


class Failed(Exception):
    pass


def call(method, url, token=None, body=None, headers=None, expect=None):
    """(status, headers, body bytes) of one request; `expect` checks the status."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, data=data)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            status, got_headers, text = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, got_headers, text = error.code, error.headers, error.read()
    if expect is not None and status != expect:
        raise Failed(f"{method} {url}: {status}, expected {expect}: {text[:300]!r}")
    return status, got_headers, text


def step(name):
    """Prints a step with its duration."""

    class Step:
        def __enter__(self):
            self.started = time.monotonic()

        def __exit__(self, kind, error, trace):
            ms = (time.monotonic() - self.started) * 1000
            print(f"smoke: {name}: {'ok' if kind is None else 'FAILED'} ({ms:.0f} ms)", flush=True)
            return False

    return Step()


def first_sse_bytes(url, token=None):
    """Opens an event stream and returns its first block (up to a blank line)."""
    request = urllib.request.Request(url, headers={"Accept": "text/event-stream"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        if response.status != 200:
            raise Failed(f"GET {url}: {response.status}")
        kind = response.headers.get("Content-Type", "")
        if not kind.startswith("text/event-stream"):
            raise Failed(f"GET {url}: Content-Type {kind}")
        block = b""
        while True:
            line = response.readline()
            if not line:
                break
            block += line
            if line.strip() == b"" and block.strip():
                break
        return block.decode()


def checks(api, export_base, token, user_id):
    """Everything but health, as `user_id` with `token`."""
    with step("GET /me is the user"):
        _, _, text = call("GET", f"{api}me", token, expect=200)
        if json.loads(text) != {"user_id": user_id}:
            raise Failed(f"/me: {text!r}, expected {user_id}")
    with step("GET /tasks without a token is 401"):
        call("GET", f"{api}tasks", expect=401)

    title = f"smoke {uuid.uuid4()}"
    with step("POST /tasks"):
        _, headers, text = call("POST", f"{api}tasks", token, {"title": title}, expect=201)
        task = json.loads(text)
        if task["title"] != title or headers.get("ETag") != '"1"':
            raise Failed(f"created {task}, ETag {headers.get('ETag')}")
        if not (headers.get("Location") or "").endswith(f"/tasks/{task['id']}"):
            raise Failed(f"Location {headers.get('Location')}")
    task_url = f"{api}tasks/{task['id']}"
    try:
        with step("GET /tasks/{id}"):
            _, _, text = call("GET", task_url, token, expect=200)
            if json.loads(text) != task:
                raise Failed(f"read back {text!r}")
        with step("GET /tasks lists it"):
            _, _, text = call("GET", f"{api}tasks?limit=100", token, expect=200)
            if task["id"] not in [t["id"] for t in json.loads(text)["items"]]:
                raise Failed(f"not listed: {text[:300]!r}")
        with step("PATCH /tasks/{id} with If-Match"):
            _, headers, text = call("PATCH", task_url, token, {"done": True},
                                    headers={"If-Match": '"1"'}, expect=200)
            if json.loads(text)["done"] is not True or headers.get("ETag") != '"2"':
                raise Failed(f"patched {text!r}, ETag {headers.get('ETag')}")
        with step("GET /tasks/export?format=csv (the export's URL)"):
            _, _, text = call("GET", f"{export_base}tasks/export?format=csv", token, expect=200)
            lines = text.decode().splitlines()
            if lines[:1] != ["id,title,description,done,created_at,updated_at"]:
                raise Failed(f"export header {lines[:1]}")
            if not any(line.startswith(task["id"] + ",") for line in lines[1:]):
                raise Failed(f"export lacks {task['id']}: {lines[:5]}")
        with step("POST /tasks/events/tickets, then the ticket's URL streams events"):
            _, _, text = call("POST", f"{api}tasks/events/tickets", token, expect=201)
            ticket = json.loads(text)
            url = urllib.parse.urljoin(api, ticket["url"])
            block = first_sse_bytes(url)
            if "retry:" not in block and "event:" not in block:
                raise Failed(f"first SSE block: {block!r}")
    finally:
        with step("DELETE /tasks/{id}, then 404"):
            call("DELETE", task_url, token, expect=204)
            call("GET", task_url, token, expect=404)


def health(api):
    with step("GET /health"):
        _, _, text = call("GET", f"{api}health", expect=200)
        if json.loads(text) != {"status": "ok"}:
            raise Failed(f"/health: {text!r}")


def local(args):
    api = args.local.rstrip("/") + "/"
    health(api)
    user_id = f"smoke-{uuid.uuid4()}"
    with step(f"a token of the local issuer for {user_id}"):
        token = subprocess.run(
            [args.devstack, "token", user_id, "--issuer-key", args.issuer_key],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    checks(api, api, token, user_id)


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def password():
    """A random password Cognito's policy accepts (12+, all four classes)."""
    pools = [string.ascii_lowercase, string.ascii_uppercase, string.digits, "!#%+-=_"]
    chars = [secrets.choice(pool) for pool in pools] + [
        secrets.choice("".join(pools)) for _ in range(28)
    ]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def deployed(args):
    import boto3

    session = boto3.session.Session(region_name=args.region)
    stack = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    api = outputs["ApiUrl"]
    health(api)
    if args.health_only:
        return
    if "UserPoolId" not in outputs:
        raise Failed(f"{args.stack} has no user pool of its own (JwtIssuer is set): no user to create")
    pool, client_id = outputs["UserPoolId"], outputs["UserPoolClientId"]
    cognito = session.client("cognito-idp")
    email = f"smoke-{uuid.uuid4()}@example.invalid"
    secret = password()
    try:
        with step(f"a throw-away user {email} (AdminCreateUser, AdminSetUserPassword)"):
            cognito.admin_create_user(
                UserPoolId=pool, Username=email, MessageAction="SUPPRESS",
                UserAttributes=[{"Name": "email", "Value": email},
                                {"Name": "email_verified", "Value": "true"}],
            )
            cognito.admin_set_user_password(UserPoolId=pool, Username=email, Password=secret, Permanent=True)
        with step("sign-in (SRP) for an access token"):
            from pycognito.aws_srp import AWSSRP

            srp = AWSSRP(username=email, password=secret, pool_id=pool, client_id=client_id, client=cognito)
            token = srp.authenticate_user()["AuthenticationResult"]["AccessToken"]
        checks(api, outputs["ExportTasksUrl"], token, claims(token)["sub"])
    finally:
        with step("the user deleted (AdminDeleteUser)"):
            try:
                cognito.admin_delete_user(UserPoolId=pool, Username=email)
            except cognito.exceptions.UserNotFoundException:
                pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="a deployed stack's name (its outputs name the URLs and the pool)")
    where.add_argument("--local", metavar="URL", help="the local stack in token mode (scripts/e2e.sh)")
    parser.add_argument("--region", help="the stack's region (default: the environment's)")
    parser.add_argument("--health-only", action="store_true", help="GET /health only (no user)")
    parser.add_argument("--issuer-key", default=".dev/issuer-key.der", help="--local: the local issuer's key")
    parser.add_argument("--devstack", default="target/debug/devstack", help="--local: mints the tokens")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        local(args) if args.local else deployed(args)
    except Failed as error:
        print(f"smoke: FAILED: {error}", file=sys.stderr)
        return 1
    print(f"smoke: passed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
