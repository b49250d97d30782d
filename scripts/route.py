#!/usr/bin/env python3
"""`make route` / `make unroute`: add (or remove again) one HTTP endpoint.

    scripts/route.py add NAME METHOD PATH [STORAGE]   (STORAGE: none|read|write)
    scripts/route.py remove NAME
    scripts/route.py router                           (print the watch router block)

`add` writes every place a route lives (docs/architecture.md, "Adding an endpoint"):
functions/NAME/ (a one-line main.rs), shared/src/handlers/NAME.rs (the
handler: its #[utoipa::path], the caller check, a 200 answer with the caller
and the path's parameters, its DYNAMODB declaration and a test),
events/NAME.json, the route table (shared/src/http/routes.rs ROUTES),
dynamodb_access() and `pub mod` in shared/src/handlers/mod.rs, the OpenAPI
paths(...) list, the `cargo lambda watch` router in Cargo.toml, Cargo.lock,
template.yaml (the function, its HttpApi event, its least-privilege policy,
its log group, its RouteSettings throttle entry), the expected answer of its
sample event in scripts/e2e.sh, its row of the privilege table in
docs/operations.md, and then regenerates openapi.json with cargo.

Edits are textual insertions (at `route:insert` markers, or at the place
the structure calls for) so the diff is minimal and `remove` takes out
exactly what `add` put in. Either refuses, changing nothing, when the name
or route is taken, an argument is malformed, or a file it would touch has
uncommitted changes. Python 3 standard library only.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ROUTES_RS = "shared/src/http/routes.rs"
HANDLERS_MOD = "shared/src/handlers/mod.rs"
OPENAPI_RS = "shared/src/openapi/mod.rs"
CARGO_TOML = "Cargo.toml"
CARGO_LOCK = "Cargo.lock"
TEMPLATE = "template.yaml"
OPENAPI_JSON = "openapi.json"
E2E = "scripts/e2e.sh"
HOOK = "pipeline/pretraffic/hook.py"
# The docs' privilege table (checked against the template by
# shared/tests/it/least_privilege.rs): a new function's row goes above this one.
PRIVILEGES = "docs/operations.md"
PRIVILEGES_ANCHOR = "  | `health`, `me`, `docs`, `fallback` | none | no policy |\n"

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
STORAGE = {
    "none": [],
    "read": ["dynamodb:GetItem", "dynamodb:Query"],
    "write": [
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ],
}
RUST_KEYWORDS = set(
    """as async await break const continue crate dyn else enum extern false fn for
    if impl in let loop match mod move mut pub ref return self static struct super
    trait true type unsafe use where while abstract become box do final gen macro
    override priv try typeof unsized virtual yield union""".split()
)
# Crate and module names a route function may not take.
RESERVED = {"shared", "devstack", "mod", "lib", "main", "test", "tests", "build", "core", "std", "alloc"}
MAX_NAME = 32
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
PARAM_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
LITERAL_RE = re.compile(r"^[A-Za-z0-9._~-]+$")

ARMS_MARKER = "        // route:insert dynamodb_access (make route adds arms above this line)"
PATHS_MARKER = "        // route:insert paths (make route adds handlers above this line)"
TEMPLATE_MARKER = "  # route:insert functions (make route adds route functions above this line)"
E2E_MARKER = "    # route:insert invoke (make route adds its functions above this line)"
HOOK_MARKER = "    # route:insert expected (make route adds its functions above this line)"
# The pre-traffic hook's lines for each function (template.yaml,
# PreTrafficHook): its crate in FUNCTIONS, its versions in the role.
HOOK_FUNCTION_LINE = re.compile(r"^            \$\{\w+Function\} \w+$", re.M)
HOOK_INVOKE_LINE = re.compile(r"^                  - !Sub \$\{\w+Function\.Arn\}:\*$", re.M)


class Refusal(Exception):
    """A reason to change nothing, for the user."""


# ------------------------------------------------------------------ reading


def read(relative):
    return (ROOT / relative).read_text(encoding="utf-8")


def pascal(snake):
    return "".join(word[:1].upper() + word[1:] for word in snake.split("_"))


def rust_consts(text):
    """`pub const NAME: &str = "value";` of a Rust file."""
    return dict(re.findall(r'pub const (\w+): &str = "([^"]*)";', text))


def routes_block(text):
    """(start, end) offsets of the ROUTES array's body (after `&[`, before `];`)."""
    start = text.index("pub const ROUTES: &[Route] = &[")
    body = text.index("[", text.index("= &[", start) + 2) + 1
    end = text.index("\n];", body) + 1
    return body, end


ROUTE_CALL = re.compile(r'route\(\s*"([A-Z]+)",\s*"([^"]+)",\s*("[^"]*"|[A-Z_]+),?\s*\),')


def parse_routes(text):
    """[(method, path, function)] of ROUTES, in table order."""
    consts = rust_consts(text)
    start, end = routes_block(text)
    routes = []
    for method, path, function in ROUTE_CALL.findall(text[start:end]):
        if function.startswith('"'):
            function = function[1:-1]
        else:
            function = consts[function]
        routes.append((method, path, function))
    return routes


def parse_methods(text):
    match = re.search(r"pub const METHODS: &\[&str\] = &\[([^\]]*)\];", text)
    return re.findall(r'"([A-Z]+)"', match.group(1))


# ---------------------------------------------------------- route matching
# The same rules as shared::http::routes::matches (API Gateway's syntax).


def matches(pattern, path):
    want = pattern.split("/")
    have = path.split("/")
    for i, w in enumerate(want):
        if i >= len(have):
            return False
        h = have[i]
        if w.startswith("{") and w.endswith("+}"):
            return i == len(want) - 1 and h != ""
        if w.startswith("{") and w.endswith("}"):
            if h == "":
                return False
        elif w != h:
            return False
    return len(want) == len(have)


def route_for(routes, method, path):
    for route in routes:
        if route[0] == method and matches(route[1], path):
            return route
    return None


def watch_path(path):
    head, sep, last = path.rpartition("{")
    if sep and last.endswith("+}"):
        return f"{head}{{*{last[:-2]}}}"
    return path


def router_lines(routes, methods, fallback):
    """path -> line of the `cargo lambda watch` router, in the order of
    route_table.rs's expected_router_toml (the same generator)."""
    paths = []
    for _, path, _ in routes:
        if path not in paths:
            paths.append(path)
    lines = {}
    for path in [watch_path(p) for p in paths] + ["/", "/{*rest}"]:
        routed = [(m, f) for m, p, f in routes if watch_path(p) == path]
        rest = []
        for m in methods:
            if any(rm == m for rm, _ in routed):
                continue
            if "{" in path:
                function = fallback
            else:
                found = route_for(routes, m, path)
                function = found[2] if found else fallback
            rest.append((m, function))
        entries = ", ".join(
            f'{{ method = "{m}", function = "{f}" }}' for m, f in routed + rest
        )
        lines[path] = f'"{path}" = [{entries}]'
    return lines


def shape(path):
    """A path with its parameters' names left out: `/tasks/{}`."""
    return "/".join("{}" if s.startswith("{") else s for s in path.split("/"))


def more_general(existing, new):
    """Whether route pattern `existing` must come after `new` in the table:
    they can match the same request path and, at the first segment where
    they differ, `existing` has a parameter where `new` has a literal."""
    a, b = existing.split("/"), new.split("/")
    for x, y in zip(a, b):
        x_param, y_param = x.startswith("{"), y.startswith("{")
        if x == y or (x_param and y_param):
            continue
        if x_param and not y_param:
            return True
        return False
    return False


# ----------------------------------------------------------------- checking


def check_name(name):
    if not NAME_RE.match(name):
        raise Refusal(
            f"NAME={name!r} is malformed: snake_case, a lowercase letter first, then "
            "lowercase letters, digits and single underscores (e.g. task_stats)"
        )
    if len(name) > MAX_NAME:
        raise Refusal(f"NAME={name!r} is too long: at most {MAX_NAME} characters")
    if name in RUST_KEYWORDS or name in RESERVED:
        raise Refusal(f"NAME={name!r} is reserved (a Rust keyword or a crate name of the workspace)")


def check_method(method):
    if method not in METHODS:
        raise Refusal(f"METHOD={method!r} is malformed: one of {', '.join(METHODS)} (upper case)")


def parse_path(path):
    """The path's parameter names, or a refusal saying what is wrong."""
    if not path.startswith("/") or path == "/":
        raise Refusal(f"PATH={path!r} is malformed: it starts with / and names at least one segment (e.g. /tasks/{{task_id}}/notes)")
    if path.endswith("/"):
        raise Refusal(f"PATH={path!r} is malformed: no trailing /")
    params = []
    for segment in path[1:].split("/"):
        if segment == "":
            raise Refusal(f"PATH={path!r} is malformed: an empty segment (//)")
        if segment.startswith("{") or segment.endswith("}"):
            inner = segment[1:-1] if segment.startswith("{") and segment.endswith("}") else None
            if inner is not None and inner.endswith("+"):
                raise Refusal(f"PATH={path!r}: a greedy parameter ({segment}) is not something make route scaffolds; use {{name}} segments")
            if inner is None or not PARAM_RE.match(inner) or inner in RUST_KEYWORDS:
                raise Refusal(
                    f"PATH={path!r} is malformed: {segment!r} is no parameter; a parameter is a whole "
                    "segment {snake_case_name} (not a Rust keyword)"
                )
            if inner in params:
                raise Refusal(f"PATH={path!r} is malformed: the parameter {{{inner}}} appears twice")
            if inner == "user_id":
                raise Refusal(f"PATH={path!r}: {{user_id}} is taken (the answer's caller field); name the parameter otherwise")
            params.append(inner)
        elif not LITERAL_RE.match(segment):
            raise Refusal(f"PATH={path!r} is malformed: segment {segment!r} may only hold A-Z a-z 0-9 . _ ~ -")
    return params


def check_free(name, method, path, routes):
    """Refuses a name or route already taken, and a parameter named unlike
    the existing routes' parameter at the same place (the local router
    refuses two names for one segment)."""
    taken = []
    if any(f == name for _, _, f in routes):
        taken.append(f"{ROUTES_RS} (a route's function)")
    for relative in [f"functions/{name}", f"shared/src/handlers/{name}.rs", f"events/{name}.json"]:
        if (ROOT / relative).exists():
            taken.append(relative)
    template = read(TEMPLATE)
    for resource in [f"{pascal(name)}Function", f"{pascal(name)}LogGroup", f"{pascal(name)}AliasErrorsAlarm"]:
        if re.search(rf"^  {resource}:", template, re.M):
            taken.append(f"{TEMPLATE} (resource {resource})")
    if re.search(rf'^\s*"{name}" =>', read(HANDLERS_MOD), re.M):
        taken.append(f"{HANDLERS_MOD} (dynamodb_access)")
    schemas = json.loads(read(OPENAPI_JSON)).get("components", {}).get("schemas", {})
    if f"{pascal(name)}Response" in schemas:
        taken.append(f"{OPENAPI_JSON} (schema {pascal(name)}Response)")
    if taken:
        raise Refusal(f"NAME={name} is taken: " + "; ".join(taken))
    for m, p, f in routes:
        if m == method and shape(p) == shape(path):
            raise Refusal(f"{method} {path} is taken: {ROUTES_RS} routes {m} {p} to {f}")
    new = path.split("/")
    for _, p, f in routes:
        old = p.split("/")
        for i, (x, y) in enumerate(zip(old, new)):
            if x.startswith("{") and y.startswith("{") and x != y:
                raise Refusal(
                    f"PATH={path}: segment {i} is {y} but the route {p} ({f}) names it {x}; "
                    "one segment has one name (the local router refuses two), so use "
                    f"{'/'.join(new[:i] + [x] + new[i + 1:])}"
                )
            if x != y:
                break


def git(*args, check=True):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=check)


def check_clean(paths):
    """Refuses when a file it would write has changes git does not have."""
    inside = git("rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0:
        raise Refusal(f"{ROOT} is no git work tree: make route needs one to know it overwrites nothing")
    status = git("status", "--porcelain", "--untracked-files=all", "--", *paths).stdout
    if status.strip():
        raise Refusal(
            "uncommitted changes in files make route would write (commit or stash them first):\n"
            + status.rstrip()
        )


# ---------------------------------------------------------------- generating


def route_line(method, path, name):
    line = f'    route("{method}", "{path}", "{name}"),'
    if len(line) <= 100:
        return line + "\n"
    return f'    route(\n        "{method}",\n        "{path}",\n        "{name}",\n    ),\n'


def route_index(routes, path, docs):
    """Where the new route goes in ROUTES: after every route more specific
    than it and before every route more general (API Gateway prefers
    literal segments, and route_for reads the table in order); among the
    places that leaves, before the docs function's routes."""
    lowest = max((i + 1 for i, (_, p, _) in enumerate(routes) if more_general(path, p)), default=0)
    highest = min((i for i, (_, p, _) in enumerate(routes) if more_general(p, path)), default=len(routes))
    first_docs = next((i for i, (_, _, f) in enumerate(routes) if f == docs), len(routes))
    return max(lowest, min(highest, first_docs))


def insert_route(text, index, line):
    start, end = routes_block(text)
    calls = list(ROUTE_CALL.finditer(text, start, end))
    if index < len(calls):
        # At the start of the line holding the call.
        at = text.rindex("\n", 0, calls[index].start()) + 1
    else:
        at = end
    return text[:at] + line + text[at:]


def remove_route(text, name):
    start, end = routes_block(text)
    for call in ROUTE_CALL.finditer(text, start, end):
        if call.group(3) == f'"{name}"':
            line_start = text.rindex("\n", 0, call.start()) + 1
            line_end = text.index("\n", call.end()) + 1
            return text[:line_start] + text[line_end:], (call.group(1), call.group(2))
    return text, None


def insert_before_marker(text, marker, insertion, where):
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.rstrip("\n") == marker:
            return "".join(lines[:i]) + insertion + "".join(lines[i:])
    raise Refusal(f"{where} has lost its marker line {marker.strip()!r}; put it back (git show HEAD:{where})")


def insert_after_last(text, pattern, insertion, where):
    """`insertion` after the last line `pattern` matches."""
    found = list(pattern.finditer(text))
    if not found:
        raise Refusal(f"{where} has no line like {pattern.pattern!r} to add to")
    end = found[-1].end() + 1
    return text[:end] + insertion + text[end:]


def privilege_row(name, storage):
    """The function's row of the docs' privilege table: what its policy grants."""
    actions = sorted(action.split(":", 1)[1] for action in STORAGE[storage])
    granted = ", ".join(f"`{a}`" for a in actions) + " on the table" if actions else "none"
    return f"  | `{name}` | {granted} | made by `make route STORAGE={storage}`: say what it is for |\n"


def insert_privilege_row(text, name, storage):
    if PRIVILEGES_ANCHOR not in text:
        raise Refusal(f"{PRIVILEGES} has lost its privilege table's last row {PRIVILEGES_ANCHOR.strip()!r}")
    return text.replace(PRIVILEGES_ANCHOR, privilege_row(name, storage) + PRIVILEGES_ANCHOR, 1)


def hook_lines(name):
    """The pre-traffic hook's two lines for the function `name`."""
    p = pascal(name)
    return f"            ${{{p}Function}} {name}\n", f"                  - !Sub ${{{p}Function.Arn}}:*\n"


def remove_exact(text, chunk):
    if chunk in text:
        return text.replace(chunk, "", 1), True
    return text, False


def insert_sorted_mod(text, name):
    lines = text.splitlines(keepends=True)
    mods = [i for i, l in enumerate(lines) if re.match(r"^pub mod \w+;$", l.rstrip("\n"))]
    line = f"pub mod {name};\n"
    for i in mods:
        if lines[i].rstrip("\n")[len("pub mod "):-1] > name:
            return "".join(lines[:i]) + line + "".join(lines[i:])
    at = mods[-1] + 1
    return "".join(lines[:at]) + line + "".join(lines[at:])


def update_router(text, old_routes, new_routes, methods, fallback):
    """Rewrites only the router lines whose entries change, and inserts or
    removes the lines of paths that appear or disappear."""
    old = router_lines(old_routes, methods, fallback)
    new = router_lines(new_routes, methods, fallback)
    header = "[workspace.metadata.lambda.watch.router]\n"
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end + 1
    lines = text[start:end].splitlines(keepends=True)

    def key(line):
        match = re.match(r'^"([^"]*)" = ', line)
        return match.group(1) if match else None

    for path in old:
        if path in new and old[path] != new[path]:
            for i, line in enumerate(lines):
                if key(line) == path:
                    lines[i] = new[path] + "\n"
    for path in old:
        if path not in new:
            lines = [l for l in lines if key(l) != path]
    order = list(new)
    for path in order:
        if path in old:
            continue
        # After the line of the path before it in the expected order.
        previous = order[: order.index(path)]
        at = 0
        for i, line in enumerate(lines):
            if key(line) in previous:
                at = i + 1
        lines.insert(at, new[path] + "\n")
    return text[:start] + "".join(lines) + text[end:]


def lock_block(name):
    return f'[[package]]\nname = "{name}"\nversion = "0.1.0"\ndependencies = [\n "shared",\n]\n\n'


def insert_lock(text, name):
    for match in re.finditer(r'^\[\[package\]\]\nname = "([^"]+)"', text, re.M):
        if match.group(1) > name:
            return text[: match.start()] + lock_block(name) + text[match.start():]
    return text.rstrip("\n") + "\n\n" + lock_block(name).rstrip("\n") + "\n"


def remove_lock(text, name):
    text, done = remove_exact(text, lock_block(name))
    if not done:
        text, done = remove_exact(text, "\n\n" + lock_block(name).rstrip("\n") + "\n")
        if done:
            text += "\n"
    return text


def settings_entry(method, path):
    limit = "Read" if method == "GET" else "Write"
    return (
        f'        "{method} {path}":\n'
        f"          ThrottlingRateLimit: !Ref {limit}RateLimit\n"
        f"          ThrottlingBurstLimit: !Ref {limit}BurstLimit\n"
    )


def settings_span(lines):
    """(first entry line, end) of TasksApi's RouteSettings mapping."""
    start = next(i for i, l in enumerate(lines) if l.rstrip("\n") == "      RouteSettings:") + 1
    end = start
    while end < len(lines) and (lines[end].startswith("        ") or lines[end].strip() == ""):
        end += 1
    while end > start and lines[end - 1].strip() == "":
        end -= 1
    return start, end


def insert_settings(text, method, path, following):
    """Before the entry of the next route of the table, else last."""
    lines = text.splitlines(keepends=True)
    start, end = settings_span(lines)
    at = end
    for m, p in following:
        key = f'        "{m} {p}":\n'
        if key in lines[start:end]:
            at = lines.index(key, start, end)
            break
    lines.insert(at, settings_entry(method, path))
    return "".join(lines)


def remove_settings(text, method, path):
    lines = text.splitlines(keepends=True)
    start, end = settings_span(lines)
    key = f'        "{method} {path}":\n'
    if key not in lines[start:end]:
        return text, False
    i = lines.index(key, start, end)
    j = i + 1
    while j < end and lines[j].startswith("          "):
        j += 1
    return "".join(lines[:i] + lines[j:]), True


def template_blocks(name, method, path, storage):
    p = pascal(name)
    actions = STORAGE[storage]
    policy = ""
    if actions:
        action_lines = "".join(f"                - {a}\n" for a in actions)
        policy = (
            "      Policies:\n"
            f"        # shared::handlers::{name}::DYNAMODB (make route STORAGE={storage}):\n"
            "        # keep the two equal (shared/tests/it/least_privilege.rs).\n"
            "        - Statement:\n"
            "            - Effect: Allow\n"
            "              Action:\n"
            f"{action_lines}"
            "              Resource: !GetAtt TasksTable.Arn\n"
        )
    return (
        f"  {p}LogGroup:\n"
        "    Type: AWS::Logs::LogGroup\n"
        "    DeletionPolicy: Delete\n"
        "    UpdateReplacePolicy: Delete\n"
        "    Properties:\n"
        f"      LogGroupName: !Sub /aws/lambda/${{AWS::StackName}}/{name}\n"
        "      RetentionInDays: !Ref LogRetentionDays\n"
        "\n"
        f"  {p}AliasErrorsAlarm:\n"
        "    Type: AWS::CloudWatch::Alarm\n"
        "    Properties:\n"
        f"      AlarmDescription: {name} failed through its live alias (rolls back a deployment in progress).\n"
        "      Namespace: AWS/Lambda\n"
        "      MetricName: Errors\n"
        "      Dimensions:\n"
        "        - Name: FunctionName\n"
        f"          Value: !Ref {p}Function\n"
        "        - Name: Resource\n"
        f"          Value: !Sub ${{{p}Function}}:live\n"
        "      Statistic: Sum\n"
        "      Period: 60\n"
        "      EvaluationPeriods: 1\n"
        "      Threshold: 0\n"
        "      ComparisonOperator: GreaterThanThreshold\n"
        "      TreatMissingData: notBreaching\n"
        "      AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]\n"
        "      OKActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]\n"
        "\n"
        f"  {p}Function:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Metadata:\n"
        "      BuildMethod: rust-cargolambda\n"
        "      BuildProperties:\n"
        f"        Binary: {name}\n"
        "    Properties:\n"
        "      DeploymentPreference:\n"
        "        Alarms:\n"
        f"          - !Ref {p}AliasErrorsAlarm\n"
        "      CodeUri: .\n"
        "      LoggingConfig:\n"
        f"        LogGroup: !Ref {p}LogGroup\n"
        f"{policy}"
        "      Events:\n"
        f"        {p}:\n"
        "          Type: HttpApi\n"
        "          Properties:\n"
        "            ApiId: !Ref TasksApi\n"
        f"            Path: {path}\n"
        f"            Method: {method}\n"
        '            PayloadFormatVersion: "2.0"\n'
        "\n"
    )


def remove_template_blocks(text, name):
    """Removes `<P>LogGroup` and `<P>Function` (each up to the next
    resource or comment at their level, blank lines included)."""
    lines = text.splitlines(keepends=True)
    removed = False
    for resource in [f"{pascal(name)}LogGroup", f"{pascal(name)}AliasErrorsAlarm", f"{pascal(name)}Function"]:
        head = f"  {resource}:\n"
        if head not in lines:
            continue
        i = lines.index(head)
        j = i + 1
        while j < len(lines) and (lines[j].strip() == "" or lines[j].startswith("   ")):
            j += 1
        del lines[i:j]
        removed = True
    return "".join(lines), removed


def sample_value(param):
    return "0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d" if param == "task_id" else f"example-{param.replace('_', '-')}"


def sample_path(path):
    return "/".join(sample_value(s[1:-1]) if s.startswith("{") else s for s in path.split("/"))


def event_json(method, path, params):
    raw = sample_path(path)
    event = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": raw,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "host": "localhost:9000",
            "user-agent": "curl/8.5.0",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": raw,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "25/Nov/2026:21:00:00 +0000",
            "timeEpoch": 1795640400000,
            "authorizer": {
                "jwt": {
                    "claims": {
                        "sub": "alice",
                        "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_example",
                        "token_use": "access",
                    },
                    "scopes": None,
                }
            },
        },
        "isBase64Encoded": False,
    }
    if params:
        event["pathParameters"] = {p: sample_value(p) for p in params}
    return json.dumps(event, indent=2) + "\n"


def function_files(name):
    cargo = f"""[package]
name = "{name}"
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true
publish.workspace = true

# No test harness to link: the handler's tests are in `shared`.
[[bin]]
name = "{name}"
path = "src/main.rs"
test = false

[dependencies]
shared = {{ workspace = true }}

[lints]
workspace = true
"""
    return cargo


def main_rs(name, storage):
    start = "start_without_storage" if storage == "none" else "start"
    return f"""//! Lambda entry point: see `shared::handlers::{name}`.

fn main() -> std::process::ExitCode {{
    shared::runtime::{start}(shared::handlers::{name}::handle)
}}
"""


def handler_rs(name, method, path, params, storage):
    p = pascal(name)
    actions = STORAGE[storage]
    if actions:
        listed = ", ".join(f'"{a}"' for a in actions)
        declaration = f"pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::table(&[{listed}]);"
        if len(declaration) > 100:
            inner = "".join(f'    "{a}",\n' for a in actions)
            declaration = f"pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::table(&[\n{inner}]);"
        access_doc = (
            "/// The DynamoDB actions [`handle`] may call (`make route STORAGE="
            f"{storage}`), which its\n"
            "/// function's policy in `template.yaml` grants, on the table only. Keep it\n"
            "/// to what the code calls, and the policy equal to it\n"
            "/// (`shared/tests/it/least_privilege.rs`).\n"
        )
    else:
        declaration = "pub const DYNAMODB: DynamoDbAccess = DynamoDbAccess::NONE;"
        access_doc = (
            "/// [`handle`] touches no storage (`make route STORAGE=none`): its function\n"
            "/// has no IAM policy in `template.yaml`.\n"
        )
    tag = "tasks" if path == "/tasks" or path.startswith("/tasks/") else "service"
    schemas = ["Unauthorized"]
    responses = [
        f'        (status = 200, description = "The caller and the path\'s parameters.", body = {p}Response),',
        "        (status = 401, response = Unauthorized),",
    ]
    if params:
        schemas.append("ValidationFailed")
        responses.append("        (status = 422, response = ValidationFailed),")
    if actions:
        schemas.append("ServiceUnavailable")
        responses.append("        (status = 503, response = ServiceUnavailable),")
    schemas.sort()
    schema_use = (
        f"use crate::http::schemas::{schemas[0]};"
        if len(schemas) == 1
        else "use crate::http::schemas::{" + ", ".join(schemas) + "};"
    )
    param_fields = "".join(
        f"    /// The `{{{q}}}` segment of the path, as sent.\n    pub {q}: String,\n" for q in params
    )
    params_attr = ""
    if params:
        params_attr = (
            "    params(\n"
            + "".join(
                f'        ("{q}" = String, Path, description = "The `{{{q}}}` segment of the path."),\n'
                for q in params
            )
            + "    ),\n"
        )
    read_params = ""
    if params:
        names = ", ".join(params)
        quoted = ", ".join(f'"{q}"' for q in params)
        read_params = f"    let [{names}] = path_strings(&req, [{quoted}])?;\n"
    body_fields = "".join(f"        {q},\n" for q in params)
    summary = name.replace("_", " ")
    summary = summary[:1].upper() + summary[1:]
    words = [summary]
    expected = [("user_id", "alice")] + [(q, sample_value(q)) for q in params]
    expected_json = "json!({" + ", ".join(f'"{k}": "{v}"' for k, v in expected) + "})"
    if len(expected_json) > 70:
        fields = "".join(f'                "{k}": "{v}",\n' for k, v in expected)
        expected_json = "json!({\n" + fields + "            })"
    uses = [
        "use lambda_http::Request;",
        "use lambda_http::http::StatusCode;",
        "use serde::Serialize;",
        "use utoipa::ToSchema;",
        "",
        "use super::DynamoDbAccess;",
        "use crate::http::identity::caller;",
    ]
    if params:
        uses.append("use crate::http::request::path_strings;")
    uses += [
        "use crate::http::response;",
        schema_use,
        "use crate::runtime::{App, HandlerResult};",
    ]
    method_lower = method.lower()
    head = f'    {method_lower}, path = "{path}", operation_id = "{name}", tag = "{tag}",\n'
    if len(head) > 100:
        head = f'    {method_lower},\n    path = "{path}",\n    operation_id = "{name}",\n    tag = "{tag}",\n'
    return f"""//! `{method} {path}`, added by `make route`: it checks the caller and
//! answers who called with the path's parameters. Replace that answer with
//! the route's work, keeping [`DYNAMODB`] to what it calls (docs/architecture.md, "Adding
//! an endpoint").

{chr(10).join(uses)}

{access_doc}{declaration}

/// The body of `{method} {path}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct {p}Response {{
    /// The caller's id: the JWT `sub` claim, or locally the `X-User-Id` header.
    pub user_id: String,
{param_fields}}}

/// {words[0]}
///
/// Added by `make route`: answers the caller and the path's parameters.
#[utoipa::path(
{head}{params_attr}    responses(
{chr(10).join(responses)}
    ),
)]
pub async fn handle<S>(_app: &App<S>, req: Request) -> HandlerResult {{
    let caller = caller(&req)?;
{read_params}    let body = {p}Response {{
        user_id: caller.id().to_owned(),
{body_fields}    }};
    Ok(response::json(StatusCode::OK, &body))
}}

#[cfg(test)]
mod tests {{
    use lambda_http::Body;
    use serde_json::{{Value, json}};

    use super::*;
    use crate::config::Config;
    use crate::runtime::respond;

    /// `events/{name}.json`, the sample event, with its caller or without.
    fn sample(with_caller: bool) -> Request {{
        let mut event: Value =
            serde_json::from_str(include_str!("../../../events/{name}.json")).expect("JSON");
        if !with_caller {{
            event["requestContext"]["authorizer"] = Value::Null;
        }}
        lambda_http::request::from_str(&event.to_string()).expect("an HTTP API event")
    }}

    async fn answer(req: Request) -> (StatusCode, Value) {{
        let config = Config::from_lookup(|name| {{
            let value = match name {{
                "TABLE_NAME" => "tasks",
                "AWS_REGION" => "us-east-1",
                "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => "test",
                _ => return None,
            }};
            Some(value.to_owned())
        }})
        .expect("test config");
        let app = App::new(config, ());
        let response = respond(&app, handle, req).await;
        let body = match response.body() {{
            Body::Text(text) => serde_json::from_str(text).expect("a JSON body"),
            other => panic!("a text body, got {{other:?}}"),
        }};
        (response.status(), body)
    }}

    #[tokio::test]
    async fn answers_its_sample_event_with_the_caller_and_the_path() {{
        let (status, body) = answer(sample(true)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            {expected_json}
        );
    }}

    #[tokio::test]
    async fn needs_a_caller() {{
        let (status, body) = answer(sample(false)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({{"detail": "not authenticated"}}));
    }}
}}
"""


# ------------------------------------------------------------------ running


def regenerate_openapi():
    if os.environ.get("ROUTE_OPENAPI") == "skip":  # scripts/route-check.sh's shape checks
        print("==> ROUTE_OPENAPI=skip: openapi.json not regenerated (make openapi does it)")
        return
    env = dict(os.environ, UPDATE_OPENAPI="1")
    command = [
        "cargo", "test", "--quiet", "--workspace", "--test", "it", "--",
        "--exact", "openapi::the_committed_openapi_json_is_the_generated_document",
    ]
    print("==> regenerating openapi.json: " + " ".join(command), flush=True)
    done = subprocess.run(command, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise Refusal("regenerating openapi.json failed (the compiler's message is above)")


def rustfmt(paths):
    subprocess.run(["rustfmt", "--edition", "2024", *[str(ROOT / p) for p in paths]], cwd=ROOT, check=True)


class Transaction:
    """Files written, remembered so a failure can put everything back."""

    def __init__(self):
        self.saved = {}

    def write(self, relative, text):
        path = ROOT / relative
        if relative not in self.saved:
            self.saved[relative] = path.read_bytes() if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def delete(self, relative):
        path = ROOT / relative
        if relative not in self.saved:
            self.saved[relative] = path.read_bytes() if path.exists() else None
        if path.exists():
            path.unlink()

    def rollback(self):
        for relative, content in self.saved.items():
            path = ROOT / relative
            if content is None:
                if path.exists():
                    path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        for directory in {f"functions/{Path(r).parts[1]}" for r in self.saved if r.startswith("functions/")}:
            prune(directory)


def prune(directory):
    """Removes empty directories under (and including) `directory`."""
    path = ROOT / directory
    if not path.is_dir():
        return
    for sub in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if not any(path.iterdir()):
        path.rmdir()


def add(name, method, path, storage):
    check_name(name)
    check_method(method)
    params = parse_path(path)
    if storage not in STORAGE:
        raise Refusal(f"STORAGE={storage!r} is malformed: none, read or write")
    routes_text = read(ROUTES_RS)
    routes = parse_routes(routes_text)
    check_free(name, method, path, routes)
    created = [f"functions/{name}/Cargo.toml", f"functions/{name}/src/main.rs",
               f"shared/src/handlers/{name}.rs", f"events/{name}.json"]
    edited = [ROUTES_RS, HANDLERS_MOD, OPENAPI_RS, CARGO_TOML, CARGO_LOCK, TEMPLATE, OPENAPI_JSON, E2E, HOOK,
              PRIVILEGES]
    check_clean(edited + created + [f"functions/{name}"])

    consts = rust_consts(routes_text)
    methods = parse_methods(routes_text)
    index = route_index(routes, path, consts["DOCS"])
    new_routes = routes[:index] + [(method, path, name)] + routes[index:]

    edits = {}
    edits[ROUTES_RS] = insert_route(routes_text, index, route_line(method, path, name))
    mod = insert_sorted_mod(read(HANDLERS_MOD), name)
    edits[HANDLERS_MOD] = insert_before_marker(mod, ARMS_MARKER, f'        "{name}" => {name}::DYNAMODB,\n', HANDLERS_MOD)
    edits[OPENAPI_RS] = insert_before_marker(read(OPENAPI_RS), PATHS_MARKER, f"        handlers::{name}::handle,\n", OPENAPI_RS)
    edits[CARGO_TOML] = update_router(read(CARGO_TOML), routes, new_routes, methods, consts["FALLBACK"])
    edits[CARGO_LOCK] = insert_lock(read(CARGO_LOCK), name)
    following = [(m, p) for m, p, _ in routes[index:]]
    template = insert_settings(read(TEMPLATE), method, path, following)
    template = insert_before_marker(template, TEMPLATE_MARKER, template_blocks(name, method, path, storage), TEMPLATE)
    functions_line, invoke_line = hook_lines(name)
    template = insert_after_last(template, HOOK_FUNCTION_LINE, functions_line, TEMPLATE)
    edits[TEMPLATE] = insert_after_last(template, HOOK_INVOKE_LINE, invoke_line, TEMPLATE)
    edits[HOOK] = insert_before_marker(read(HOOK), HOOK_MARKER, f'    "{name}": ("buffered", {{200}}),\n', HOOK)
    edits[E2E] = insert_before_marker(read(E2E), E2E_MARKER, f"    {name}) echo 200 ;;\n", E2E)
    edits[PRIVILEGES] = insert_privilege_row(read(PRIVILEGES), name, storage)
    edits[f"functions/{name}/Cargo.toml"] = function_files(name)
    edits[f"functions/{name}/src/main.rs"] = main_rs(name, storage)
    edits[f"shared/src/handlers/{name}.rs"] = handler_rs(name, method, path, params, storage)
    edits[f"events/{name}.json"] = event_json(method, path, params)

    transaction = Transaction()
    try:
        for relative, text in edits.items():
            transaction.write(relative, text)
        # rustfmt decides how the new lines wrap (ROUTES entries, say).
        rustfmt([f"shared/src/handlers/{name}.rs", f"functions/{name}/src/main.rs", ROUTES_RS, HANDLERS_MOD, OPENAPI_RS])
        transaction.saved.setdefault(OPENAPI_JSON, (ROOT / OPENAPI_JSON).read_bytes())
        regenerate_openapi()
    except BaseException:
        transaction.rollback()
        raise
    print(f"""==> added {method} {path} -> {name} (storage: {storage})
created: {', '.join(created)}
edited:  {', '.join(edited)}
next:    write the route's work in shared/src/handlers/{name}.rs (its test too),
         keep its DYNAMODB and the {pascal(name)}Function policy in template.yaml equal,
         then `make openapi` if its #[utoipa::path] changed, and `make test`.""")


def remove(name):
    check_name(name)
    routes_text = read(ROUTES_RS)
    routes = parse_routes(routes_text)
    found = [(m, p) for m, p, f in routes if f == name]
    if not found and not (ROOT / f"functions/{name}").exists():
        raise Refusal(f"NAME={name}: no route of {ROUTES_RS} and no functions/{name}: nothing to remove")
    if len(found) > 1:
        raise Refusal(f"NAME={name} serves {len(found)} routes; make unroute removes routes added by make route (one each)")
    created = [f"functions/{name}/Cargo.toml", f"functions/{name}/src/main.rs",
               f"shared/src/handlers/{name}.rs", f"events/{name}.json"]
    others = [str(p.relative_to(ROOT)) for p in (ROOT / f"functions/{name}").rglob("*")
              if p.is_file() and str(p.relative_to(ROOT)) not in created] if (ROOT / f"functions/{name}").exists() else []

    edits, missed = {}, []
    text, removed = remove_route(routes_text, name)
    if removed:
        method, path = removed
        new_routes = [r for r in routes if r[2] != name]
        edits[ROUTES_RS] = text
        consts = rust_consts(routes_text)
        edits[CARGO_TOML] = update_router(read(CARGO_TOML), routes, new_routes, parse_methods(routes_text), consts["FALLBACK"])
        template, ok = remove_settings(read(TEMPLATE), method, path)
        if not ok:
            missed.append(f'{TEMPLATE}: RouteSettings "{method} {path}"')
    else:
        missed.append(f"{ROUTES_RS}: the route of {name}")
        template = read(TEMPLATE)
    template, ok = remove_template_blocks(template, name)
    if not ok:
        missed.append(f"{TEMPLATE}: {pascal(name)}LogGroup and {pascal(name)}Function")
    for line in hook_lines(name):
        template, ok = remove_exact(template, line)
        if not ok:
            missed.append(f"{TEMPLATE}: PreTrafficHook's {line.strip()!r}")
    edits[TEMPLATE] = template
    hook, ok = remove_exact(read(HOOK), f'    "{name}": ("buffered", {{200}}),\n')
    if not ok:
        missed.append(f"{HOOK}: EXPECTED[{name!r}]")
    edits[HOOK] = hook
    mod, ok1 = remove_exact(read(HANDLERS_MOD), f"pub mod {name};\n")
    mod, ok2 = remove_exact(mod, f'        "{name}" => {name}::DYNAMODB,\n')
    if not (ok1 and ok2):
        missed.append(f"{HANDLERS_MOD}: `pub mod {name};` or its dynamodb_access arm")
    edits[HANDLERS_MOD] = mod
    openapi_rs, ok = remove_exact(read(OPENAPI_RS), f"        handlers::{name}::handle,\n")
    if not ok:
        missed.append(f"{OPENAPI_RS}: handlers::{name}::handle")
    edits[OPENAPI_RS] = openapi_rs
    edits[CARGO_LOCK] = remove_lock(read(CARGO_LOCK), name)
    e2e, ok = remove_exact(read(E2E), f"    {name}) echo 200 ;;\n")
    if not ok:
        missed.append(f"{E2E}: `{name}) echo 200 ;;`")
    edits[E2E] = e2e
    edits[OPENAPI_JSON] = remove_operation(read(OPENAPI_JSON), name)
    privileges = read(PRIVILEGES)
    row = re.search(rf"^  \| `{re.escape(name)}` \|.*\n", privileges, re.M)
    if row:
        edits[PRIVILEGES] = privileges[:row.start()] + privileges[row.end():]
    else:
        missed.append(f"{PRIVILEGES}: the privilege table's row of {name}")
    # No clean-tree check: only what make route wrote is taken out, and
    # other changes in the same files stay (route then unroute, uncommitted,
    # is the usual way to try one out).

    transaction = Transaction()
    try:
        for relative, text in edits.items():
            if text != read(relative):
                transaction.write(relative, text)
        for relative in created + others:
            transaction.delete(relative)
        prune(f"functions/{name}")
    except BaseException:
        transaction.rollback()
        raise
    print(f"==> removed {name}" + (f" ({removed[0]} {removed[1]})" if removed else ""))
    if missed:
        print("not found (edited by hand since make route? remove them yourself):\n  " + "\n  ".join(missed))
        return 1
    return 0


def remove_operation(text, name):
    """openapi.json without the operation `name` (and its path when it was
    the path's only one, and its `<Name>Response` schema), in the layout
    the code writes (serde_json's pretty printer)."""
    document = json.loads(text)
    for path, item in list(document.get("paths", {}).items()):
        for method, operation in list(item.items()):
            if isinstance(operation, dict) and operation.get("operationId") == name:
                del item[method]
        if not any(m in item for m in ["get", "put", "post", "delete", "options", "head", "patch", "trace"]):
            del document["paths"][path]
    schemas = document.get("components", {}).get("schemas", {})
    schema = f"{pascal(name)}Response"
    if schema in schemas:
        probe = dict(document)
        probe["components"] = dict(document["components"])
        probe["components"]["schemas"] = {k: v for k, v in schemas.items() if k != schema}
        if f'"#/components/schemas/{schema}"' not in json.dumps(probe):
            del schemas[schema]
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv):
    try:
        if len(argv) >= 1 and argv[0] == "add" and len(argv) in (4, 5):
            storage = argv[4] if len(argv) == 5 and argv[4] else "none"
            add(argv[1], argv[2], argv[3], storage)
            return 0
        if len(argv) == 2 and argv[0] == "remove":
            return remove(argv[1])
        if len(argv) == 1 and argv[0] == "router":
            text = read(ROUTES_RS)
            lines = router_lines(parse_routes(text), parse_methods(text), rust_consts(text)["FALLBACK"])
            print("\n".join(lines.values()))
            return 0
    except Refusal as refusal:
        command = "make unroute" if argv and argv[0] == "remove" else "make route"
        print(f"{command}: refused, nothing changed: {refusal}", file=sys.stderr)
        return 2
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
