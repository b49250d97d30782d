#!/usr/bin/env bash
# The deploy workflow's deploy step (.github/workflows/deploy.yml,
# docs/pipeline.md): the artifact `sam build` made once, deployed to one
# environment with samconfig.toml's [<env>.deploy] settings.
#
#   scripts/pipeline-deploy.sh staging|prod
#
# Reads .aws-sam/build/template.yaml (the downloaded build artifact),
# ARTIFACT_BUCKET (the environment's bucket, pipeline/oidc-role.yaml's
# output) and, optionally, ALARM_TOPIC_ARN (added to the config's
# parameter_overrides: an ARN names an account, so it is no part of the
# repository). AWS credentials come from the environment (the workflow's
# OIDC role). DRY_RUN=1 prints the sam command instead of running it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

env_name="${1:?staging or prod}"
case "$env_name" in staging | prod) ;; *) echo "staging or prod, not $env_name" >&2; exit 2 ;; esac
: "${ARTIFACT_BUCKET:?the artifact bucket of the environment (pipeline/oidc-role.yaml, ArtifactBucketName)}"
template=.aws-sam/build/template.yaml
if [ ! -f "$template" ]; then
  echo "$template: no build artifact (download the workflow's aws-sam artifact, or run make sam-build)" >&2
  exit 1
fi

# The config's parameter_overrides, plus the alarm topic when given
# (--parameter-overrides on the command line replaces the config's).
mapfile -t overrides < <(python3 -c '
import shlex, sys, tomllib
config = tomllib.load(open("samconfig.toml", "rb"))
print("\n".join(shlex.split(config[sys.argv[1]]["deploy"]["parameters"]["parameter_overrides"])))
' "$env_name")
if [ -n "${ALARM_TOPIC_ARN:-}" ]; then
  overrides+=("AlarmTopicArn=$ALARM_TOPIC_ARN")
fi

command=(sam deploy --config-env "$env_name" --template-file "$template"
  --s3-bucket "$ARTIFACT_BUCKET" --parameter-overrides "${overrides[@]}")
if [ "${DRY_RUN:-0}" = 1 ]; then
  printf '%q ' "${command[@]}"
  echo
  exit 0
fi
ensure_sam
SAM_CLI_TELEMETRY=0 "${command[@]}"
