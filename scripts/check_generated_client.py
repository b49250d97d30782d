"""A client generated from the served /openapi.json by a widely used
generator (openapi-python-client, pinned in the tools venv) drives the API
as a stranger's code would: create, list with a cursor, get, patch with
If-Match, replace, delete, history. Statuses and parsed models are checked;
the generator must print no warning about the document.

Usage: check_generated_client.py API_URL BEARER_TOKEN WORK_DIR
"""

import importlib
import subprocess
import sys
import urllib.request
from pathlib import Path


def fail(message):
    print(f"generated client: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    api, token, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "openapi.json"
    spec.write_bytes(urllib.request.urlopen(f"{api}/openapi.json").read())
    out = work / "task_api_client"
    generated = subprocess.run(
        ["openapi-python-client", "generate", "--path", str(spec), "--meta", "none",
         "--output-path", str(out), "--overwrite"],
        capture_output=True, text=True,
    )
    printed = (generated.stdout + generated.stderr).strip()
    if generated.returncode != 0:
        fail(f"the generator failed:\n{printed}")
    if "warning" in printed.lower() or "error" in printed.lower():
        fail(f"the generator warned about the document:\n{printed}")
    print(f"generated: {printed}")

    sys.path.insert(0, str(work))
    client_mod = importlib.import_module("task_api_client")
    tasks = importlib.import_module("task_api_client.api.tasks")
    models = importlib.import_module("task_api_client.models")
    for name in ["create_task", "list_tasks", "get_task", "update_task", "replace_task",
                 "delete_task", "task_history"]:
        importlib.import_module(f"task_api_client.api.tasks.{name}")
    client = client_mod.AuthenticatedClient(base_url=api, token=token, raise_on_unexpected_status=True)

    def expect(response, status, what):
        if response.status_code != status:
            fail(f"{what}: expected {status}, got {response.status_code}: {response.content!r}")
        return response.parsed

    created = []
    for i in range(3):
        task = expect(tasks.create_task.sync_detailed(
            client=client, body=models.TaskCreate(title=f"generated {i}", done=(i == 1))), 201, "create")
        if not isinstance(task, models.Task) or task.title != f"generated {i}":
            fail(f"create parsed as {task!r}")
        created.append(task)

    seen, cursor = [], None
    while True:
        kwargs = {"cursor": cursor} if cursor else {}
        page = expect(tasks.list_tasks.sync_detailed(client=client, limit=2, **kwargs), 200, "list")
        if not isinstance(page, models.TaskPage) or len(page.items) > 2:
            fail(f"list parsed as {page!r}")
        seen += [t.id for t in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    if seen[-3:] != [t.id for t in created]:
        fail(f"list with cursor: {seen} does not end with {[t.id for t in created]}")

    first = created[0]
    got = tasks.get_task.sync_detailed(first.id, client=client)
    expect(got, 200, "get")
    etag = got.headers.get("etag")
    if etag != '"1"':
        fail(f"get: ETag {etag!r}")

    patched = expect(tasks.update_task.sync_detailed(
        first.id, client=client, body=models.TaskPatch(done=True), if_match=etag), 200, "patch")
    if not patched.done or patched.title != first.title:
        fail(f"patch parsed as {patched!r}")
    stale = tasks.update_task.sync_detailed(
        first.id, client=client, body=models.TaskPatch(title="late"), if_match=etag)
    detail = expect(stale, 412, "patch with a stale If-Match")
    if not isinstance(detail, models.HTTPError) or detail.detail != "precondition failed":
        fail(f"412 parsed as {detail!r}")

    replaced = expect(tasks.replace_task.sync_detailed(
        first.id, client=client, body=models.TaskCreate(title="replaced")), 200, "replace")
    if replaced.title != "replaced" or replaced.done or replaced.description != "":
        fail(f"replace parsed as {replaced!r}")

    invalid = expect(tasks.create_task.sync_detailed(
        client=client, body=models.TaskCreate(title="")), 422, "create with an empty title")
    if not isinstance(invalid, models.HTTPValidationError) or invalid.detail[0].type_ != "string_too_short":
        fail(f"422 parsed as {invalid!r}")

    expect(tasks.delete_task.sync_detailed(first.id, client=client), 204, "delete")
    missing = expect(tasks.get_task.sync_detailed(first.id, client=client), 404, "get after delete")
    if missing.detail != "task not found":
        fail(f"404 parsed as {missing!r}")

    # The audit function records changes from the stream: within seconds.
    import time
    deadline = time.time() + 20
    while True:
        history = expect(tasks.task_history.sync_detailed(first.id, client=client), 200, "history")
        actions = [str(c.action.value) for c in history.items]
        if actions == ["deleted", "updated", "updated", "created"]:
            break
        if time.time() > deadline:
            fail(f"history: {actions}")
        time.sleep(0.5)
    print("generated client: create, list with cursor, get, patch with If-Match (and stale: 412), "
          "replace, 422, delete, history: all as documented")


if __name__ == "__main__":
    main()
