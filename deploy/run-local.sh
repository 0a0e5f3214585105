#!/usr/bin/env bash
# Build the three services and run them as local processes against a local RabbitMQ
# and PostgreSQL (e.g. `docker compose up -d rabbitmq postgres`). Ctrl-C stops all
# three cleanly; if one exits on its own, the others are stopped and this exits 1.
#
#   deploy/run-local.sh [--release]
#
# The services' defaults point at 127.0.0.1 (RabbitMQ :5672 guest/guest, PostgreSQL
# :5432 user postgres, SMTP :1025); any variable you export (AMQP_URL, SMTP_URL,
# OTEL_*, RUST_LOG, ...) is passed through. When SMTP_URL is not set and nothing
# listens on 127.0.0.1:1025, a stand-in SMTP server (`smtp-sink`) is started as well
# and prints each welcome mail with the services' logs.
# HTTP_ADDR and DATABASE_URL are per service by nature, so a global value is ignored.
set -euo pipefail

services=(registration email profile)
ports=(8080 8081 8082)

profile=debug release_flag=
case "${1:-}" in
    "") ;;
    --release) profile=release release_flag=--release ;;
    *) echo "usage: $0 [--release]" >&2; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
packages=()
for service in "${services[@]}"; do packages+=(-p "$service"); done
cargo build ${release_flag:+"$release_flag"} --bins "${packages[@]}"
bin_dir="${CARGO_TARGET_DIR:-target}/$profile"

if [ -z "${SMTP_URL:-}" ] && ! (exec 3<>/dev/tcp/127.0.0.1/1025) 2>/dev/null; then
    cargo build ${release_flag:+"$release_flag"} -p system-tests --bin smtp-sink
    services=(smtp-sink "${services[@]}")
    ports=(1025 "${ports[@]}")
fi

# The keys that seal personal data at rest: made once, kept beside the build, so the
# data a previous run stored still opens. Export PII_KEYS / PII_LOOKUP_KEY to use yours.
keys_dir="${CARGO_TARGET_DIR:-target}/run-local"
if [ -z "${PII_KEYS:-}${PII_KEYS_FILE:-}" ]; then
    mkdir -p "$keys_dir"
    [ -s "$keys_dir/pii-keys" ] || (umask 077; echo "local-1:$(head -c 32 /dev/urandom | base64)" > "$keys_dir/pii-keys")
    [ -s "$keys_dir/pii-lookup-key" ] || (umask 077; head -c 32 /dev/urandom | base64 > "$keys_dir/pii-lookup-key")
    export PII_KEYS_FILE="$keys_dir/pii-keys" PII_LOOKUP_KEY_FILE="$keys_dir/pii-lookup-key"
fi

for var in HTTP_ADDR DATABASE_URL; do
    if [ -n "${!var:-}" ]; then
        echo "run-local: ignoring $var (each service uses its own default)" >&2
        unset "$var"
    fi
done

# However this script ends (Ctrl-C, SIGTERM, a service exiting, an error), the
# services get SIGTERM and are waited for.
pids=()
stop_all() {
    [ "${#pids[@]}" -gt 0 ] || return 0
    trap 'kill -KILL "${pids[@]}" 2>/dev/null' INT TERM  # a second Ctrl-C stops waiting
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop_all EXIT
trap 'echo "run-local: stopping (Ctrl-C again to kill)" >&2; exit 130' INT
trap 'exit 143' TERM

# Job control, on only while starting them, puts each service (and its prefixer) in
# its own process group: the terminal's Ctrl-C reaches only this script, which then
# stops the services exactly once, with SIGTERM.
set -m
for name in "${services[@]}"; do
    # `$!` is the service's own PID: the prefixer runs in a process substitution.
    # It ignores SIGINT so shutdown logs still get through; it ends with the service.
    OTEL_SERVICE_NAME="${OTEL_SERVICE_NAME:-$name}" "$bin_dir/$name" \
        > >(trap '' INT; exec awk -v p="[$name] " '{ print p $0; fflush() }') 2>&1 &
    pids+=($!)
done
set +m
# If our own output goes away (`| tee` killed by the same Ctrl-C), a write must fail
# rather than kill us by SIGPIPE before the services are stopped.
trap '' PIPE

echo "run-local: started ($profile build); Ctrl-C stops all three" >&2
for i in "${!services[@]}"; do
    printf 'run-local: %-12s http://127.0.0.1:%s\n' "${services[$i]}" "${ports[$i]}" >&2
done

# Poll rather than `wait -n`: it works in old bash too, and a trap runs at once.
while :; do
    for i in "${!pids[@]}"; do
        if ! kill -0 "${pids[$i]}" 2>/dev/null; then
            status=0
            wait "${pids[$i]}" || status=$?
            echo "run-local: ${services[$i]} exited on its own (status $status); stopping the others" >&2
            exit 1
        fi
    done
    sleep 1
done
