"""The pre-traffic hook against stub CodeDeploy and Lambda clients (run by
`make template-check`): the version it invokes, the sample it sends, and
the verdict it reports, right and wrong. Standard library only."""

import io
import json
import os
import sys
import unittest

EVENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "events")
os.environ["HOOK_EVENTS_DIR"] = EVENTS
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hook  # noqa: E402


class CodeDeploy:
    def __init__(self, name, version, as_json=True):
        spec = {"version": 0.0, "Resources": [{"Fn": {"Type": "AWS::Lambda::Function", "Properties": {
            "Name": name, "Alias": "live", "CurrentVersion": "6", "TargetVersion": version}}}]}
        content = json.dumps(spec) if as_json else (
            "version: 0.0\nResources:\n  - Fn:\n      Type: AWS::Lambda::Function\n"
            f"      Properties:\n        Name: {name}\n        Alias: live\n"
            f"        CurrentVersion: 6\n        TargetVersion: {version}\n")
        self.content = content
        self.deployment = {"deploymentInfo": {"applicationName": "app", "revision": {
            "revisionType": "AppSpecContent", "appSpecContent": {"content": content}}}}
        self.reported = []

    def get_deployment(self, deploymentId):
        return self.deployment

    def get_application_revision(self, applicationName, revision):
        assert applicationName == "app" and revision == {"revisionType": "AppSpecContent",
                                                          "appSpecContent": {"sha256": "abc"}}
        return {"revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": self.content}}}

    def put_lifecycle_event_hook_execution_status(self, **kwargs):
        self.reported.append(kwargs)


class Lambda:
    """Answers every invocation with `answer` (a dict, or bytes streamed)."""

    def __init__(self, answer, function_error=None):
        self.answer = answer
        self.function_error = function_error
        self.calls = []

    def invoke(self, **kwargs):
        self.calls.append(kwargs)
        out = {"Payload": io.BytesIO(json.dumps(self.answer).encode())}
        if self.function_error:
            out["FunctionError"] = self.function_error
        return out

    def invoke_with_response_stream(self, **kwargs):
        self.calls.append(kwargs)
        return {"EventStream": [{"PayloadChunk": {"Payload": self.answer[:10]}},
                                {"PayloadChunk": {"Payload": self.answer[10:]}},
                                {"InvokeComplete": {}}]}


def run(crate, lam, version="7", as_json=True):
    name = f"task-api-{crate}-ABC"
    os.environ["FUNCTIONS"] = f"other-fn health\n{name} {crate}\n"
    codedeploy = CodeDeploy(name, version, as_json)
    status = hook.handler({"DeploymentId": "d-1", "LifecycleEventHookExecutionId": "e-1"}, None,
                          codedeploy=codedeploy, lam=lam)
    [report] = codedeploy.reported
    assert report == {"deploymentId": "d-1", "lifecycleEventHookExecutionId": "e-1", "status": status}
    return status


def streamed(status):
    prelude = json.dumps({"statusCode": status, "headers": {}}).encode()
    return prelude + b"\0" * 8 + b'{"detail":"not authenticated"}'


class HookTest(unittest.TestCase):
    def test_every_sample_event_has_an_expected_answer(self):
        crates = sorted(f[: -len(".json")] for f in os.listdir(EVENTS) if f.endswith(".json"))
        self.assertEqual(sorted(hook.EXPECTED), crates)

    def test_the_new_version_is_invoked_with_its_own_sample(self):
        lam = Lambda({"statusCode": 200, "body": "{}"})
        self.assertEqual(run("health", lam), "Succeeded")
        [call] = lam.calls
        self.assertEqual(call["Qualifier"], "7")
        self.assertEqual(call["FunctionName"], "task-api-health-ABC")
        with open(os.path.join(EVENTS, "health.json"), "rb") as f:
            self.assertEqual(call["Payload"], f.read())

    def test_a_yaml_appspec_names_the_same_target(self):
        lam = Lambda({"statusCode": 404})
        self.assertEqual(run("get_task", lam, as_json=False), "Succeeded")
        self.assertEqual(lam.calls[0]["Qualifier"], "7")

    def test_a_revision_without_content_is_read_from_the_application(self):
        codedeploy = CodeDeploy("task-api-me-ABC", "9")
        codedeploy.deployment["deploymentInfo"]["revision"] = {
            "revisionType": "AppSpecContent", "appSpecContent": {"sha256": "abc"}}
        os.environ["FUNCTIONS"] = "task-api-me-ABC me\n"
        lam = Lambda({"statusCode": 200})
        hook.handler({"DeploymentId": "d", "LifecycleEventHookExecutionId": "e"}, None,
                     codedeploy=codedeploy, lam=lam)
        self.assertEqual(codedeploy.reported[0]["status"], "Succeeded")
        self.assertEqual(lam.calls[0]["Qualifier"], "9")

    def test_an_arn_in_the_appspec_names_the_function(self):
        codedeploy = CodeDeploy("arn:aws:lambda:eu-west-1:123456789012:function:task-api-me-ABC", "5")
        os.environ["FUNCTIONS"] = "task-api-me-ABC me\n"
        lam = Lambda({"statusCode": 200})
        hook.handler({"DeploymentId": "d", "LifecycleEventHookExecutionId": "e"}, None,
                     codedeploy=codedeploy, lam=lam)
        self.assertEqual(codedeploy.reported[0]["status"], "Succeeded")
        self.assertEqual((lam.calls[0]["FunctionName"], lam.calls[0]["Qualifier"]), ("task-api-me-ABC", "5"))

    def test_a_wrong_status_fails_the_deployment(self):
        self.assertEqual(run("health", Lambda({"statusCode": 500})), "Failed")
        self.assertEqual(run("get_task", Lambda({"statusCode": 200})), "Failed")

    def test_a_function_error_fails_the_deployment(self):
        lam = Lambda({"errorType": "Runtime.ExitError"}, function_error="Unhandled")
        self.assertEqual(run("me", lam), "Failed")

    def test_latest_or_an_alias_is_never_invoked(self):
        for target in ["$LATEST", "live"]:
            lam = Lambda({"statusCode": 200})
            self.assertEqual(run("health", lam, version=target), "Failed")
            self.assertEqual(lam.calls, [])

    def test_a_function_not_in_functions_fails(self):
        codedeploy = CodeDeploy("someone-else", "3")
        os.environ["FUNCTIONS"] = "task-api-health-ABC health\n"
        hook.handler({"DeploymentId": "d", "LifecycleEventHookExecutionId": "e"}, None,
                     codedeploy=codedeploy, lam=Lambda({"statusCode": 200}))
        self.assertEqual(codedeploy.reported[0]["status"], "Failed")

    def test_streamed_functions_are_read_up_to_their_prelude(self):
        self.assertEqual(run("export_tasks", Lambda(streamed(401))), "Succeeded")
        self.assertEqual(run("task_events", Lambda(streamed(200))), "Failed")

    def test_the_audit_batch_must_have_no_failures(self):
        self.assertEqual(run("audit", Lambda({"batchItemFailures": []})), "Succeeded")
        self.assertEqual(run("audit", Lambda({"batchItemFailures": [{"itemIdentifier": "1"}]})), "Failed")


if __name__ == "__main__":
    unittest.main()
