#!/usr/bin/env python3
"""Does the audit keep up? Load on a running `make dev`, then how long a new
change takes to reach its task's history (issue 25; docs/audit-throughput.md).

    scripts/audit-load.py [--base http://127.0.0.1:9000] [--callers 8]
                          [--seconds 60] [--rate 65] [--max-writes 40000]

Each caller (X-User-Id: load-<run>-<n>, header mode) creates a task, renames
it, marks it done and deletes it, over and over, at --rate writes/s for all
callers together (65, issue 25's load; 0: as fast as the API answers), for
--seconds or until --max-writes writes in all. Every 10 s, and once
after the load, a probe caller creates a task and times how long until the
task's history has its entry (`GET /tasks/{id}/history`). After the load it
also times, from the end of the load, until every caller's last change is in
its history (the backlog drained). Loopback only, standard library only; prints figures, exits 1 if
the final probe's entry did not appear within --probe-timeout seconds.
"""

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def call(base, caller, method, path, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("X-User-Id", caller)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
            return response.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        return error.code, None
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return 0, None


def history(base, caller, task_id):
    status, body = call(base, caller, "GET", f"/tasks/{task_id}/history?limit=100")
    if status != 200 or not body:
        return []
    return [entry["action"] for entry in body.get("items", [])]


def wait_for(base, caller, task_id, action, timeout):
    """Seconds until the task's history has `action`, or None."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if action in history(base, caller, task_id):
            return time.monotonic() - started
        time.sleep(0.1)
    return None


class Load:
    def __init__(self, base, run, callers, deadline, max_writes, rate):
        self.base, self.run, self.deadline = base, run, deadline
        # Each caller's pause between writes for `rate` writes/s in all (0: none).
        self.interval = callers / rate if rate > 0 else 0.0
        self.callers = [f"load-{run}-{n}" for n in range(callers)]
        self.lock = threading.Lock()
        self.writes = self.errors = self.refused = 0
        self.max_writes = max_writes
        self.last = {}  # caller -> (task id, action of its last change)

    def pace(self, due):
        """Waits until `due`; the next write's due time."""
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return max(due, time.monotonic() - self.interval) + self.interval

    def count(self, ok, status):
        with self.lock:
            if status == 429:
                self.refused += 1
            if ok:
                self.writes += 1
            else:
                self.errors += 1
            return self.writes < self.max_writes

    def caller(self, caller):
        n = 0
        due = time.monotonic()
        while time.monotonic() < self.deadline:
            n += 1
            due = self.pace(due)
            status, task = call(self.base, caller, "POST", "/tasks",
                                {"title": f"load {n}", "description": "audit load"})
            if not self.count(status == 201, status) or status != 201:
                if status != 201:
                    time.sleep(0.1)
                    continue
                return
            task_id = task["id"]
            self.last[caller] = (task_id, "created")
            steps = [("PATCH", {"title": f"load {n} renamed"}, "updated"),
                     ("PATCH", {"done": True}, "updated"),
                     ("DELETE", None, "deleted")]
            for method, body, action in steps:
                due = self.pace(due)
                if time.monotonic() >= self.deadline:
                    return
                status, _ = call(self.base, caller, method, f"/tasks/{task_id}", body)
                ok = status in (200, 204)
                if ok:
                    self.last[caller] = (task_id, action)
                if not self.count(ok, status):
                    return


def probe(base, run, label, timeout):
    caller = f"probe-{run}"
    written = time.monotonic()
    status, task = call(base, caller, "POST", "/tasks", {"title": f"probe {label}"})
    if status != 201:
        print(f"  probe {label}: create answered {status}")
        return None
    lag = wait_for(base, caller, task["id"], "created", timeout)
    shown = "not within %d s" % timeout if lag is None else "%.2f s" % lag
    print(f"  probe {label}: a new change's history entry after {shown}"
          f" (write answered in {time.monotonic() - written - (lag or 0):.2f} s)")
    return lag


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:9000")
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-writes", type=int, default=40_000)
    parser.add_argument("--rate", type=float, default=65,
                        help="writes/s of all callers together (issue 25's load: 65); 0: as fast as answered")
    parser.add_argument("--probe-timeout", type=float, default=120)
    args = parser.parse_args()
    host = urllib.parse.urlsplit(args.base).hostname
    if host not in LOOPBACK:
        sys.exit(f"--base must be a loopback address, not {host!r}")
    if not (1 <= args.callers <= 64 and 0 < args.seconds <= 600):
        sys.exit("--callers 1..64, --seconds up to 600")
    run = f"{int(time.time())}"

    status, _ = call(args.base, "probe", "GET", "/tasks?limit=1")
    if status != 200:
        sys.exit(f"{args.base} answered {status}: is make dev running (header mode)?")
    print(f"warm-up: {probe(args.base, run, 'before the load', args.probe_timeout)}")

    started = time.monotonic()
    load = Load(args.base, run, args.callers, started + args.seconds, args.max_writes,
                args.rate)
    threads = [threading.Thread(target=load.caller, args=(c,), daemon=True)
               for c in load.callers]
    for thread in threads:
        thread.start()
    rate = f"{args.rate:g} writes/s" if args.rate > 0 else "as fast as answered"
    print(f"load: {args.callers} callers for {args.seconds:.0f} s, {rate}, against {args.base}")
    lags = []

    def probes():
        # One probe at a time, every 10 s of the load (a slow one delays the next).
        next_probe = started + 10
        while time.monotonic() < started + args.seconds - 5:
            time.sleep(max(0.0, next_probe - time.monotonic()))
            lags.append(probe(args.base, run, f"at {time.monotonic() - started:.0f} s",
                              args.probe_timeout))
            next_probe = max(next_probe + 10, time.monotonic())

    prober = threading.Thread(target=probes, daemon=True)
    prober.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    print(f"load done: {load.writes} writes in {elapsed:.1f} s = {load.writes / elapsed:.1f}"
          f" writes/s ({load.errors} failed)")
    if load.refused:
        print(f"  {load.refused} were 429s of the callers' fair share (WRITES_PER_CALLER, default"
              " 20 per 10 s): for a load test, start the stack with"
              " WRITES_PER_CALLER=100000 make dev")

    # At once: a new change, and every caller's last change, timed from now.
    ended = time.monotonic()
    behind = dict(load.last)

    def drain():
        while behind and time.monotonic() - ended < args.probe_timeout:
            for caller, (task_id, action) in list(behind.items()):
                if action in history(args.base, caller, task_id):
                    del behind[caller]
            time.sleep(0.2)

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    final = probe(args.base, run, "after the load", args.probe_timeout)
    drainer.join()
    drained = time.monotonic() - ended
    print(f"every caller's last change in its history {drained:.1f} s after the load"
          f" ({len(behind)} still missing)")
    print(json.dumps({
        "callers": args.callers, "seconds": round(elapsed, 1), "writes": load.writes,
        "writes_per_s": round(load.writes / elapsed, 1), "failed": load.errors,
        "probe_lags_during_load_s": [None if l is None else round(l, 2) for l in lags],
        "final_probe_lag_s": None if final is None else round(final, 2),
        "backlog_drained_s": round(drained, 1), "backlog_missing": len(behind),
    }))
    sys.exit(0 if final is not None and not behind else 1)


if __name__ == "__main__":
    main()
