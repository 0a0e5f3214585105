#!/usr/bin/env bash
# Prints the Secrets that overlays/dev expects, made from the demo files in
# deploy/secrets/ (the ones compose mounts, whose hashes are in the broker definitions):
#
#   deploy/k8s/dev-secrets.sh | kubectl apply -n signup-dev -f -
#
# Per service: <service>-db and <service>-broker (username and password, the shape
# CloudNativePG and KEDA read) and <service>-pii (the data keys). Not a kustomize
# secretGenerator: that would keep each file's final newline in the password, which the
# services and CloudNativePG strip but KEDA would send to RabbitMQ; `$(cat …)` drops it.
# Needs only kubectl (no cluster: --dry-run=client).
set -euo pipefail
secrets="$(cd "$(dirname "${BASH_SOURCE[0]}")/../secrets" && pwd)"

secret() {
    kubectl create secret generic "$@" --dry-run=client -o yaml
    echo ---
}

for service in registration email profile; do
    secret "$service-db" --type=kubernetes.io/basic-auth --from-literal=username="$service" \
        --from-literal=password="$(cat "$secrets/$service-db-password")"
    secret "$service-broker" --type=kubernetes.io/basic-auth --from-literal=username="$service" \
        --from-literal=password="$(cat "$secrets/$service-amqp-password")"
    secret "$service-pii" --from-file=keys="$secrets/$service-pii-keys" \
        --from-file=lookup-key="$secrets/$service-pii-lookup-key"
done
