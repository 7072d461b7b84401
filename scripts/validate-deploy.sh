#!/usr/bin/env bash
# Validate deploy/ without Docker or a cluster:
#   1. yamllint on every YAML file;
#   2. deploy/compose.yaml against the Compose specification's JSON schema (vendored in the
#      check-jsonschema package);
#   3. deploy/k8s/*.yaml against the Kubernetes JSON schemas (kubernetes-validate, strict:
#      unknown fields are errors);
#   4. cross-checks against the code (scripts/validate_deploy.py): every FACELENS_ variable and
#      ConfigMap key is a real setting and is accepted by `facelens serve --print-config`, the
#      Dockerfile builds and copies the real binary, probes ask paths the server serves.
# The validators come from PyPI into a virtual environment under target/ (pinned versions).
# FACELENS_BIN=path/to/facelens skips building the binary.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${FACELENS_DEPLOY_VENV:-target/deploy-venv}"
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/check-jsonschema" ] || [ ! -x "$venv/bin/yamllint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "check-jsonschema==0.39.0" "kubernetes-validate==1.37.0" "yamllint==1.38.0"
fi

echo "== yamllint"
"$venv/bin/yamllint" --strict -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' deploy

echo "== compose schema"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml

echo "== kubernetes schemas"
k8s_files=()
for f in deploy/k8s/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || k8s_files+=("$f")
done
"$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version 1.30 "${k8s_files[@]}"
"$venv/bin/kubernetes-validate" --strict --quiet "${k8s_files[@]}"
echo "ok: ${#k8s_files[@]} files against Kubernetes 1.30 and the newest schemas"

echo "== cross-checks with the code"
bin="${FACELENS_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --quiet -p facelens
  bin="${CARGO_TARGET_DIR:-target}/debug/facelens"
fi
"$venv/bin/python" scripts/validate_deploy.py "$bin"
