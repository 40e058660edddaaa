#!/usr/bin/env bash
# Static checks of what `sam deploy` would deploy, all offline: cfn-lint and `sam validate
# --lint` on template.yaml, asl-validator on the state machine, openapi-spec-validator on the
# API's document (docs/openapi.yaml). Installs the tools if missing (PyPI cfn-lint,
# aws-sam-cli and openapi-spec-validator, npm asl-validator under .dbsync/npm).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
py=${PYTHON:-python3}
export SAM_CLI_TELEMETRY=0

command -v cfn-lint >/dev/null || "$py" -m pip install -q 'cfn-lint>=1.20,<2'
command -v sam >/dev/null || "$py" -m pip install -q 'aws-sam-cli>=1.120,<2'
"$py" -c 'import openapi_spec_validator' 2>/dev/null || "$py" -m pip install -q 'openapi-spec-validator>=0.7,<1'
npm_dir=$repo/.dbsync/npm
if [ ! -x "$npm_dir/node_modules/.bin/asl-validator" ]; then
  command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
  mkdir -p "$npm_dir"
  npm install --silent --prefix "$npm_dir" 'asl-validator@^4' >/dev/null
fi

cfn-lint template.yaml
sam validate --lint --region us-east-1 --template-file template.yaml >/dev/null
"$npm_dir/node_modules/.bin/asl-validator" --json-path statemachine/sync.asl.json
# OpenAPI 3.1: the document, and the JSON Schema 2020-12 of every schema in it.
"$py" -m openapi_spec_validator docs/openapi.yaml
echo "validate.sh: template.yaml, statemachine/sync.asl.json and docs/openapi.yaml are valid"
