#!/usr/bin/env python3
"""Renders /docs (Swagger UI) and /redoc (ReDoc) of a running stack in headless
Chromium with every outside host unresolvable, and checks that each page shows
every operation of the API's own /openapi.json and loaded nothing from
anywhere but the API.

    scripts/check_docs_pages.py http://127.0.0.1:9000

Chromium's own background requests (updates, sign-in) have no page initiator
and fail to resolve; only what the page itself loads is checked. About 3 s a
page. Standard library only.
"""

import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--virtual-time-budget=15000",
]


def operation_ids(base: str) -> list[str]:
    with urllib.request.urlopen(f"{base}/openapi.json", timeout=30) as response:
        document = json.load(response)
    return sorted(
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
    )


def render(url: str, host: str) -> tuple[str, list[tuple[str, str]]]:
    """The page's DOM after its scripts ran, and (initiator, url) of each request."""
    with tempfile.TemporaryDirectory() as profile:
        netlog = Path(profile) / "netlog.json"
        command = [
            shutil.which("chromium") or "chromium",
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}/data",
            f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {host}",
            f"--log-net-log={netlog}",
            "--dump-dom",
            url,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
        requests = []
        for event in json.loads(netlog.read_text())["events"]:
            params = event.get("params", {})
            if "url" in params and "method" in params:
                requests.append((params.get("initiator", ""), params["url"]))
        return result.stdout, requests


def check(base: str, page: str, marker: str, ids: list[str]) -> list[str]:
    host = urllib.parse.urlsplit(base).hostname or "127.0.0.1"
    origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(base))
    dom, requests = render(f"{base}{page}", host)
    problems = []
    missing = [i for i in ids if not re.search(marker.format(id=re.escape(i)), dom)]
    if missing:
        problems.append(f"{page}: operations not rendered: {missing}")
    loaded = sorted({u for initiator, u in requests if initiator == origin})
    outside = [u for u in loaded if not u.startswith(origin + "/")]
    if outside:
        problems.append(f"{page}: loaded from outside the API: {outside}")
    if f"{origin}/openapi.json" not in loaded:
        problems.append(f"{page}: never fetched {origin}/openapi.json: {loaded}")
    shown = len(ids) - len(missing)
    print(f"{page}: {shown}/{len(ids)} operations rendered, {len(loaded)} files loaded, "
          f"{len(outside)} from outside the API")
    return problems


def main() -> int:
    base = sys.argv[1].rstrip("/")
    ids = operation_ids(base)
    problems = []
    # Swagger UI: <div class="opblock ..." id="operations-<tag>-<operationId>">;
    # ReDoc: <div id="operation/<operationId>" ...>.
    problems += check(base, "/docs", 'id="operations-[a-z_]+-{id}"', ids)
    problems += check(base, "/redoc", 'id="operation/{id}"', ids)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
