#!/usr/bin/env python3
"""A burst of parallel requests against the local stack, with its figures.

    python3 scripts/burst.py [--base http://127.0.0.1:9000] [--requests 32]
                             [--header 'X-User-Id: alice'] [--max-seconds 2]

Sends REQUESTS requests at once (one thread each) spread over eight read
routes, right after `make dev` is up: each route's first requests start
function instances, so this measures cold starts under a burst. Prints
every request's status and latency, then the minimum, median and maximum,
and exits 1 if any request failed (no answer, or a 5xx) or took longer than
MAX_SECONDS. Loopback only (the base URL must be 127.0.0.1 or localhost),
standard library only, every request bounded by a timeout.
"""

import argparse
import statistics
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ROUTES = [
    "/health",
    "/me",
    "/tasks",
    "/tasks?limit=5&done=false",
    f"/tasks/{uuid.UUID(int=1)}",
    f"/tasks/{uuid.UUID(int=1)}/history",
    "/tasks/export",
    "/openapi.json",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:9000")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--max-seconds", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    host = urllib.parse.urlsplit(args.base).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"loopback only, not {host}", file=sys.stderr)
        return 2
    if not 1 <= args.requests <= 256:
        print("--requests: 1 to 256", file=sys.stderr)
        return 2
    headers = dict(h.split(":", 1) for h in (args.header or ["X-User-Id: burst"]))
    headers = {k.strip(): v.strip() for k, v in headers.items()}

    results = [None] * args.requests
    start = threading.Barrier(args.requests)

    def one(i: int) -> None:
        path = ROUTES[i % len(ROUTES)]
        request = urllib.request.Request(args.base + path, headers=headers)
        start.wait()
        began = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=args.timeout) as answer:
                answer.read()
                status = answer.status
        except urllib.error.HTTPError as error:
            error.read()
            status = error.code
        except OSError as error:
            status = f"no answer ({error})"
        results[i] = (path, status, time.monotonic() - began)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for path, status, seconds in sorted(results, key=lambda r: r[2]):
        print(f"{seconds * 1000:8.1f} ms  {status}  {path}")
    latencies = [r[2] for r in results]
    print(
        f"{len(results)} requests over {len(ROUTES)} routes: "
        f"min {min(latencies) * 1000:.0f} ms, median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms (limit {args.max_seconds * 1000:.0f} ms)"
    )
    failed = [r for r in results if not isinstance(r[1], int) or r[1] >= 500]
    slow = [r for r in results if r[2] > args.max_seconds]
    if failed or slow:
        print(f"{len(failed)} failed, {len(slow)} slower than the limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
