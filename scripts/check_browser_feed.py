"""A real browser follows the live feed with its native EventSource, as a
web page of the API's origin would: it asks for a ticket with a token
(fetch, POST /tasks/events/tickets), opens `new EventSource(url)` with no
header at all, and must see a create, a patch and a delete in order; then,
after the server ends the stream (EVENTS_LIFETIME_SECONDS), it reconnects
by itself and must miss nothing written meanwhile, and repeat nothing.

Usage: check_browser_feed.py API_URL BEARER_TOKEN
"""

import json
import sys
import time
import urllib.request

from playwright.sync_api import sync_playwright


def call(api, token, method, path, body=None, headers=None):
    request = urllib.request.Request(f"{api}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    with urllib.request.urlopen(request) as response:
        text = response.read().decode()
        return json.loads(text) if text else None


def main():
    api, token = sys.argv[1], sys.argv[2]
    with sync_playwright() as p:
        # Debian's Chromium (no browser download); a fresh profile is
        # Playwright's own.
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-quic"],
        )
        page = browser.new_page()
        # A page of the API's origin: the ticket's URL is relative to it.
        page.goto(f"{api}/health")
        page.evaluate("""async (token) => {
            window.seen = []; window.opens = 0;
            const r = await fetch('/tasks/events/tickets',
                {method: 'POST', headers: {Authorization: 'Bearer ' + token}});
            if (r.status !== 201) throw new Error('ticket: ' + r.status);
            const {url} = await r.json();
            const feed = new EventSource(url);
            feed.onopen = () => { window.opens += 1; };
            for (const kind of ['task.created', 'task.updated', 'task.deleted']) {
                feed.addEventListener(kind, (e) => window.seen.push(
                    [kind, JSON.parse(e.data).task_id, e.lastEventId]));
            }
        }""", token)
        page.wait_for_function("window.opens >= 1", timeout=15000)

        def wait_for(count, what):
            deadline = time.time() + 30
            while time.time() < deadline:
                seen = page.evaluate("window.seen")
                if len(seen) >= count:
                    return seen
                time.sleep(0.2)
            raise SystemExit(f"browser feed: {what}: saw {page.evaluate('window.seen')}")

        task = call(api, token, "POST", "/tasks", {"title": "seen by a browser"})
        call(api, token, "PATCH", f"/tasks/{task['id']}", {"done": True})
        call(api, token, "DELETE", f"/tasks/{task['id']}")
        seen = wait_for(3, "create, patch, delete")
        kinds = [(k, t) for k, t, _ in seen[:3]]
        expected = [("task.created", task["id"]), ("task.updated", task["id"]),
                    ("task.deleted", task["id"])]
        if kinds != expected:
            raise SystemExit(f"browser feed: expected {expected}, saw {seen}")
        print("browser feed: create, patch, delete seen in order through EventSource")

        # The server ends each stream after its lifetime; EventSource
        # reconnects with Last-Event-ID. A change written across that gap
        # must arrive exactly once.
        opens = page.evaluate("window.opens")
        deadline = time.time() + 40
        later = []
        while page.evaluate("window.opens") <= opens and time.time() < deadline:
            later.append(call(api, token, "POST", "/tasks", {"title": f"across the gap {len(later)}"}))
            time.sleep(1)
        if page.evaluate("window.opens") <= opens:
            raise SystemExit("browser feed: the stream never ended and reconnected")
        later.append(call(api, token, "POST", "/tasks", {"title": "after the reconnect"}))
        seen = wait_for(3 + len(later), "the changes across the reconnect")
        time.sleep(2)
        seen = page.evaluate("window.seen")
        ids = [t for k, t, _ in seen[3:]]
        if ids != [t["id"] for t in later]:
            raise SystemExit(f"browser feed: after the reconnect expected {[t['id'] for t in later]}, saw {ids}")
        print(f"browser feed: the stream ended and EventSource reconnected; "
              f"{len(later)} changes across it, each once, in order")
        browser.close()


if __name__ == "__main__":
    main()
