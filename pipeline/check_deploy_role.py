#!/usr/bin/env python3
"""Does the deploy role of pipeline/oidc-role.yaml allow what CloudFormation
needs to create, read, update and delete the application stack's resources?
(docs/pipeline.md, "Setting up a fork"; run by `make template-check`.)

For each resource type of the transformed template (TEMPLATE, written by
scripts/sam_translate.py), the permissions its CloudFormation handlers
declare (the registry schemas that cfn-lint bundles: `handlers.<create|
read|update|delete>.permissions`) must be granted by the deploy role
(action names; the resources are scoped in the template), or be listed in
OMITTED with the reason this stack never needs them: the handlers declare
the permissions of every feature of a type, and the stack uses few. A new
resource type in template.yaml, or a new feature of one, fails here until
the role grants it or OMITTED says why not. Offline; Python tools venv.

Usage: check_deploy_role.py [TEMPLATE]  (default target/deploy-check/template.json)
"""

import fnmatch
import glob
import json
import os
import sys

import cfnlint.data.schemas
from samcli.yamlhelper import yaml_parse

ROLE_TEMPLATE = "pipeline/oidc-role.yaml"

# Handler permissions the application stack never needs, and why.
OMITTED = {
    "kms:*": "no customer-managed KMS key: the table uses the AWS managed aws/dynamodb key, the queue SSE-SQS",
    "kinesis:*": "no Kinesis streaming destination",
    "dynamodb:*KinesisStreamingDestination": "no Kinesis streaming destination",
    "dynamodb:*TableReplica": "not a global table",
    "dynamodb:ImportTable": "no import from S3",
    "dynamodb:DescribeImport": "no import from S3",
    "s3:GetObjectMetadata": "no import from S3",
    "logs:CreateLogStream": "no import from S3 (its error log)",
    "logs:DescribeLogStreams": "no import from S3 (its error log)",
    "logs:PutLogEvents": "no import from S3 (its error log)",
    "dynamodb:GetItem": "the table's data is the functions' business (imports, replicas)",
    "dynamodb:PutItem": "the table's data is the functions' business (imports, replicas)",
    "dynamodb:UpdateItem": "the table's data is the functions' business (imports, replicas)",
    "dynamodb:DeleteItem": "the table's data is the functions' business (imports, replicas)",
    "dynamodb:BatchWriteItem": "the table's data is the functions' business (imports, replicas)",
    "dynamodb:Query": "the table's data is the functions' business (imports, replicas)",
    "dynamodb:Scan": "the table's data is the functions' business (imports, replicas)",
    "dynamodb:PutResourcePolicy": "no resource policy on the table",
    "dynamodb:DeleteResourcePolicy": "no resource policy on the table",
    "dynamodb:UpdateContributorInsights": "no contributor insights",
    "dynamodb:DeleteTable": "the table is retained (DeletionPolicy: Retain)",
    "cognito-idp:DeleteUserPool": "the user pool is retained (DeletionPolicy: Retain)",
    "cognito-idp:AddCustomAttributes": "no custom attributes",
    "iam:CreateServiceLinkedRole": "no feature that needs one (replicas, contributor insights, pool SMS/analytics)",
    "iam:PutRolePermissionsBoundary": "no permissions boundary",
    "iam:DeleteRolePermissionsBoundary": "no permissions boundary",
    "ec2:*": "the functions are not in a VPC",
    "elasticfilesystem:*": "no file system",
    "s3files:*": "no file system",
    "lambda:GetLayerVersion": "no layers",
    "lambda:GetCodeSigningConfig": "no code signing",
    "lambda:PutFunctionCodeSigningConfig": "no code signing",
    "lambda:DeleteFunctionCodeSigningConfig": "no code signing",
    "lambda:PutProvisionedConcurrencyConfig": "no provisioned concurrency",
    "lambda:DeleteProvisionedConcurrencyConfig": "no provisioned concurrency",
    "lambda:PutRuntimeManagementConfig": "no runtime management configuration",
    "lambda:PutFunctionRecursionConfig": "no recursion configuration",
    "lambda:PutFunctionScalingConfig": "no capacity provider",
    "lambda:PassCapacityProvider": "no capacity provider",
    "lambda:AssociateRuntimeAlias": "no runtime alias",
    "logs:AssociateKmsKey": "log groups use CloudWatch's own encryption",
    "logs:DisassociateKmsKey": "log groups use CloudWatch's own encryption",
    "logs:*DataProtectionPolicy": "no data protection policy",
    "logs:PutIndexPolicy": "no field index policy",
    "logs:DeleteIndexPolicy": "no field index policy",
    "logs:PutResourcePolicy": "no log resource policy",
    "logs:DeleteResourcePolicy": "no log resource policy",
    "logs:CreateLogDelivery": "no log delivery",
    "logs:PutBearerTokenAuthentication": "no bearer-token ingestion",
    "logs:PutLogGroupDeletionProtection": "no deletion protection",
    "firehose:*": "no Firehose delivery",
    "s3:REST.PUT.OBJECT": "no delivery to S3",
    "apigateway:TagResource": "not an IAM action (cfn-lint): tags are PUT/DELETE on /tags/*, granted",
    "apigateway:UntagResource": "not an IAM action (cfn-lint): tags are PUT/DELETE on /tags/*, granted",
    "codedeploy:RegisterOnPremisesInstance": "EC2/on-premises deployments only",
}


def handler_permissions():
    """typeName -> the permissions of its create/read/update/delete handlers."""
    root = os.path.join(os.path.dirname(cfnlint.data.schemas.__file__), "resources")
    out = {}
    for path in glob.glob(os.path.join(root, "*.json")):
        try:
            with open(path) as f:
                schema = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(schema, dict) or "typeName" not in schema:
            continue
        handlers = schema.get("handlers", {})
        out[schema["typeName"]] = {
            p for k in ("create", "read", "update", "delete") for p in handlers.get(k, {}).get("permissions", [])
        }
    return out


def granted_actions():
    with open(ROLE_TEMPLATE) as f:
        role = yaml_parse(f.read())
    actions = set()
    for resource in role["Resources"].values():
        properties = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
        if "PolicyDocument" in properties and resource["Type"] == "AWS::IAM::RolePolicy":
            documents.append(properties["PolicyDocument"])
        for document in documents:
            for statement in document["Statement"]:
                if statement["Effect"] == "Allow":
                    action = statement["Action"]
                    actions.update([action] if isinstance(action, str) else action)
    return actions


def covered(permission, patterns):
    return any(fnmatch.fnmatchcase(permission.lower(), p.lower()) for p in patterns)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "target/deploy-check/template.json"
    with open(path) as f:
        template = json.load(f)
    types = sorted({r["Type"] for r in template["Resources"].values()})
    permissions = handler_permissions()
    granted = granted_actions()
    problems = []
    for kind in types:
        if kind not in permissions:
            problems.append(f"{kind}: no handler schema in cfn-lint's data")
            continue
        for permission in sorted(permissions[kind]):
            if not covered(permission, granted) and not covered(permission, OMITTED):
                problems.append(f"{kind}: {permission}")
    if problems:
        print(f"{ROLE_TEMPLATE}: the deploy role lacks what CloudFormation's handlers need "
              "(grant it, or add it to OMITTED with the reason):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"==> {ROLE_TEMPLATE}: the deploy role covers the handlers of {len(types)} resource types "
          f"({len(OMITTED)} omitted permission patterns, each with its reason)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
