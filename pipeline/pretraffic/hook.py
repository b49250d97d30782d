"""CodeDeploy's pre-traffic hook (BeforeAllowTraffic) of every function of
template.yaml (docs/pipeline.md, "Gradual deployment and rollback").

CodeDeploy calls it once per function deployment, before any traffic moves
to the new version. It reads which function and which version from the
deployment's AppSpec (codedeploy:GetDeployment, or GetApplicationRevision
when the deployment names its revision without the content), invokes exactly that
version (a version number: never $LATEST, never the alias, which the role
denies too) with the function's own sample event (events/<crate>.json,
copied next to this file by the Makefile), checks the answer against
EXPECTED, and reports Succeeded or Failed
(codedeploy:PutLifecycleEventHookExecutionStatus), Failed on any error.
Failed: the alias stays on the old version and CloudFormation rolls back.

The samples are as the repository has them, sent to a deployed function:
the caller is the authorizer's claims (`sub` "alice", which no Cognito user
has), no task of theirs exists, and the streamed functions (no authorizer
in front) get no bearer token. Only the standard library and the runtime's
boto3.
"""

import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
# Deployed: next to this file (the Makefile copies them); tests: the
# repository's events/.
EVENTS = os.environ.get("HOOK_EVENTS_DIR", os.path.join(HERE, "events"))

# crate -> (how it is invoked, what its sample must get, deployed).
EXPECTED = {
    "health": ("buffered", {200}),
    "me": ("buffered", {200}),
    "docs": ("buffered", {200}),
    # A known path with another method (the sample: POST /health).
    "fallback": ("buffered", {405}),
    "list_tasks": ("buffered", {200}),
    "task_history": ("buffered", {200}),
    # The sample's task does not exist: the conditional write or read runs
    # against the table (the role's access) and finds nothing.
    "get_task": ("buffered", {404}),
    "replace_task": ("buffered", {404}),
    "update_task": ("buffered", {404}),
    "delete_task": ("buffered", {404}),
    # Writes one task of the sample caller per deploy; once that caller
    # holds MAX_TASKS, the same transaction answers 409 (as correct).
    "create_task": ("buffered", {201, 409}),
    # A ticket (TTL'd: DynamoDB deletes it).
    "create_ticket": ("buffered", {201}),
    # Streamed, on Function URLs: the function checks the token itself,
    # and the sample has none.
    "export_tasks": ("streamed", {401}),
    "task_events": ("streamed", {401}),
    # The stream consumer: its batch answer, no failures (entries are
    # written once: a redelivery writes nothing; TTL'd).
    "audit": ("batch", None),
    # Added by make route: the new handler's sample answers 200.
    # route:insert expected (make route adds its functions above this line)
}

# A streamed answer: the JSON prelude, 8 NUL bytes, then the body.
PRELUDE_END = b"\0" * 8


def log(**fields):
    print(json.dumps(fields, default=str), flush=True)


def functions():
    """FUNCTIONS: `<function name> <crate>` lines (template.yaml)."""
    pairs = {}
    for line in os.environ.get("FUNCTIONS", "").splitlines():
        if line.strip():
            name, crate = line.split()
            pairs[name] = crate
    return pairs


def appspec(codedeploy, deployment_id):
    """The deployment's AppSpec text: in GetDeployment's revision, or, when
    that names the revision without its content, GetApplicationRevision's."""
    info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    revision = info["revision"]
    content = (revision.get("appSpecContent") or revision.get("string") or {}).get("content")
    if not content:
        stored = codedeploy.get_application_revision(applicationName=info["applicationName"], revision=revision)
        stored = stored["revision"]
        content = (stored.get("appSpecContent") or stored.get("string") or {}).get("content")
    if not content:
        raise ValueError(f"no AppSpec in the deployment: {revision}")
    return content


def target(content):
    """(function name, version) of a Lambda AppSpec."""
    try:
        spec = json.loads(content)
        for resource in spec["Resources"]:
            for item in resource.values():
                if item.get("Type") == "AWS::Lambda::Function":
                    p = item["Properties"]
                    return p["Name"], str(p["TargetVersion"])
    except json.JSONDecodeError:
        # A YAML AppSpec: its two scalars.
        name = re.search(r"^\s*Name:\s*['\"]?([\w:-]+)", content, re.M)
        version = re.search(r"^\s*TargetVersion:\s*['\"]?(\w+)", content, re.M)
        if name and version:
            return name.group(1), version.group(1)
    raise ValueError(f"no AWS::Lambda::Function in the AppSpec: {content}")


def function_name(name):
    """A function's name from its name or (qualified) ARN."""
    if name.startswith("arn:"):
        return name.split(":function:", 1)[1].split(":", 1)[0]
    return name


def sample(crate):
    with open(os.path.join(EVENTS, f"{crate}.json"), "rb") as f:
        return f.read()


def invoke(lam, name, version, payload, mode):
    """The status (or the batch's failures) of one invocation of `version`."""
    if mode == "streamed":
        answer = lam.invoke_with_response_stream(FunctionName=name, Qualifier=version, Payload=payload)
        body = b""
        stream = answer["EventStream"]
        for event in stream:
            if "PayloadChunk" in event:
                body += event["PayloadChunk"]["Payload"]
                if PRELUDE_END in body:
                    break
            elif "InvokeComplete" in event:
                error = event["InvokeComplete"].get("ErrorCode")
                if error:
                    raise RuntimeError(f"{name}:{version}: {error} {event['InvokeComplete'].get('ErrorDetails')}")
                break
        if hasattr(stream, "close"):
            stream.close()
        prelude, found, _ = body.partition(PRELUDE_END)
        if not found:
            raise RuntimeError(f"{name}:{version}: no streamed prelude in {body[:200]!r}")
        return json.loads(prelude)["statusCode"]
    answer = lam.invoke(FunctionName=name, Qualifier=version, Payload=payload)
    result = answer["Payload"].read()
    if answer.get("FunctionError"):
        raise RuntimeError(f"{name}:{version}: {answer['FunctionError']}: {result[:500]!r}")
    result = json.loads(result)
    if mode == "batch":
        return result["batchItemFailures"]
    return result["statusCode"]


def verdict(lam, name, version, crate):
    """None when the new version answered its sample as expected, else why not."""
    if not re.fullmatch(r"[0-9]+", version):
        return f"{name}: target {version!r} is not a published version"
    if crate not in EXPECTED:
        return f"{name}: no expected answer for crate {crate!r} (pipeline/pretraffic/hook.py)"
    mode, want = EXPECTED[crate]
    got = invoke(lam, name, version, sample(crate), mode)
    if mode == "batch":
        return None if got == [] else f"{crate}: batch failures {got}"
    return None if got in want else f"{crate}: status {got}, expected {sorted(want)}"


def handler(event, context, codedeploy=None, lam=None):
    if codedeploy is None or lam is None:
        import boto3

        codedeploy = codedeploy or boto3.client("codedeploy")
        lam = lam or boto3.client("lambda")
    deployment_id = event["DeploymentId"]
    status, why = "Failed", None
    try:
        name, version = target(appspec(codedeploy, deployment_id))
        name = function_name(name)
        crate = functions().get(name)
        if crate is None:
            why = f"{name} is not in FUNCTIONS (template.yaml, PreTrafficHook)"
        else:
            why = verdict(lam, name, version, crate)
            log(function=name, version=version, crate=crate, problem=why)
        if why is None:
            status = "Succeeded"
    except Exception as error:  # noqa: BLE001 - any error is a failed hook
        why = f"{type(error).__name__}: {error}"
    finally:
        log(deployment=deployment_id, status=status, problem=why)
        codedeploy.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id,
            lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
            status=status,
        )
    return status
