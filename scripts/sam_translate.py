#!/usr/bin/env python3
"""What CloudFormation receives: template.yaml after SAM's transform, offline.

Runs samtranslator (installed with aws-sam-cli) as `sam deploy` would have
the service run it, with the default parameters, and writes:

- OUT/template.json: the transformed template (AWS::Lambda::Function,
  AWS::IAM::Role, the HTTP API's OpenAPI body, permissions, URLs...),
  checked against the code by shared/tests/it/deployed_template.rs;
- OUT/functions.json: each function as `make deploy-check` starts it: its
  binary, `.aws-sam/build/<Id>/bootstrap`, memory, log settings, and its
  environment with the intrinsics resolved for a local run (the table is
  `tasks`; JwtIssuer names a local issuer, `http://127.0.0.1:{jwks_port}`,
  whose JWKS the check serves; every other parameter at its default).

The only stubs: CodeUri becomes the S3 object `sam package` would upload,
and the managed-policy map (an AWS call otherwise) holds the one policy SAM
attaches itself. Usage: sam_translate.py [OUT]  (default target/deploy-check)

CodeDeploy's hooks (a function an alias' CodeDeployLambdaAliasUpdate names
as BeforeAllowTrafficHook or AfterAllowTrafficHook: PreTrafficHook, in
Python) are not the API's functions: functions.json leaves them out, by
that rule (deployed_template.rs checks the hook itself).
"""
import json
import logging
import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# Offline there is no feature-toggle configuration: SAM warns once per
# deployment preference that it uses the defaults.
logging.getLogger("samtranslator.feature_toggle.feature_toggle").setLevel(logging.ERROR)

from samcli.yamlhelper import yaml_parse  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402

BASIC_ROLE = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
REGION = "us-east-1"
LOCAL_ISSUER = "http://127.0.0.1:{jwks_port}"
LOCAL_AUDIENCE = "deploy-check-client"
LOCAL_TABLE = "tasks"


class ManagedPolicies:
    """SAM asks IAM for the managed policies' ARNs; offline, the only one
    it attaches by itself (every function's basic execution role)."""

    def load(self):
        return {"AWSLambdaBasicExecutionRole": BASIC_ROLE}


class Resolver:
    """The intrinsics a function's environment may use, for a local run."""

    def __init__(self, template, parameters):
        self.template = template
        self.parameters = parameters

    def ref(self, name):
        if name in self.parameters:
            return self.parameters[name]
        if name == "AWS::Region":
            return REGION
        resource = self.template["Resources"].get(name)
        if resource and resource["Type"] == "AWS::DynamoDB::Table":
            return LOCAL_TABLE
        raise ValueError(f"cannot resolve Ref {name} locally")

    def condition(self, name):
        return self.value(self.template["Conditions"][name])

    def value(self, v):
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) != 1:
            return {k: self.value(x) for k, x in v.items()}
        (key, arg), = v.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::If":
            name, yes, no = arg
            return self.value(yes if self.condition(name) else no)
        if key == "Fn::Equals":
            a, b = (self.value(x) for x in arg)
            return a == b
        if key == "Fn::Not":
            return not self.value(arg[0])
        if key == "Fn::Join":
            sep, items = arg
            return sep.join(str(x) for x in self.value(items))
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::GetAtt" and list(arg)[-1] == "FunctionUrl":
            # A Function URL (the ticket's EVENTS_URL): a loopback stand-in.
            return "http://127.0.0.1/"
        if key.startswith("Fn::"):
            raise ValueError(f"cannot resolve {key} locally: {v}")
        return {key: self.value(arg)}


def deploy_hooks(template):
    """Logical ids of the functions CodeDeploy runs as hooks of an alias."""
    hooks = set()
    for resource in template["Resources"].values():
        update = resource.get("UpdatePolicy", {}).get("CodeDeployLambdaAliasUpdate", {})
        for key in ("BeforeAllowTrafficHook", "AfterAllowTrafficHook"):
            if key in update:
                hooks.add(update[key]["Ref"])
    return hooks


def alias_target(template, ref):
    """The function a Ref names: itself, or the function of an alias."""
    resource = template["Resources"].get(ref, {})
    if resource.get("Type") == "AWS::Lambda::Alias":
        return resource["Properties"]["FunctionName"]["Ref"]
    return ref


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "target/deploy-check"
    bootstrap_dir = sys.argv[2] if len(sys.argv) > 2 else None
    os.makedirs(out, exist_ok=True)
    with open("template.yaml") as f:
        source = yaml_parse(f.read())
    for rid, resource in source["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://artifacts/{rid}.zip"
    transformed = transform(source, {}, ManagedPolicies())
    with open(os.path.join(out, "template.json"), "w") as f:
        json.dump(transformed, f, indent=1, sort_keys=True, default=str)

    parameters = {
        name: str(p.get("Default", ""))
        for name, p in transformed.get("Parameters", {}).items()
    }
    parameters["JwtIssuer"] = LOCAL_ISSUER
    parameters["JwtAudience"] = [LOCAL_AUDIENCE]
    resolver = Resolver(transformed, parameters)
    functions = []
    hooks = deploy_hooks(transformed)
    for rid, resource in sorted(transformed["Resources"].items()):
        if resource["Type"] != "AWS::Lambda::Function" or rid in hooks:
            continue
        props = resource["Properties"]
        env = resolver.value(props.get("Environment", {}).get("Variables", {}))
        logging = {
            k: resolver.value(v) for k, v in props.get("LoggingConfig", {}).items() if k != "LogGroup"
        }
        urls = [
            r["Properties"] for r in transformed["Resources"].values()
            if r["Type"] == "AWS::Lambda::Url"
            and alias_target(transformed, r["Properties"]["TargetFunctionArn"]["Ref"]) == rid
        ]
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        functions.append({
            "function": binary,
            "id": rid,
            "bootstrap": (
                f"{bootstrap_dir}/{binary}/bootstrap" if bootstrap_dir
                else f".aws-sam/build/{rid}/bootstrap"
            ),
            "memory": props.get("MemorySize", 128),
            "timeout": props.get("Timeout", 3),
            "log_format": logging.get("LogFormat", "Text"),
            "log_level": logging.get("ApplicationLogLevel", "INFO"),
            "streamed": any(u.get("InvokeMode") == "RESPONSE_STREAM" for u in urls),
            "environment": {k: str(v) for k, v in env.items()},
            "jwt_audience": LOCAL_AUDIENCE,
        })
    with open(os.path.join(out, "functions.json"), "w") as f:
        json.dump(functions, f, indent=1)
    print(f"==> {out}/template.json (after SAM's transform), {out}/functions.json ({len(functions)} functions)")


if __name__ == "__main__":
    main()
