#!/bin/sh
# Generates a private certificate authority and, signed by it, a server certificate and a
# client certificate, all PEM (keys PKCS#8, EC P-256), for TLS between the services and
# RabbitMQ, PostgreSQL and the SMTP server:
#
#   deploy/tls/generate.sh deploy/tls/out                    # names of the compose stack
#   deploy/tls/generate.sh /tmp/certs localhost 127.0.0.1    # other names (the tests')
#
# Writes into OUT_DIR: ca.pem (give it to the clients: `cacertfile=`, `sslrootcert=`),
# ca.key (keep it away from everything else), server.pem and server.key (for the
# servers, valid for every NAME given: host names or IP addresses), client.pem and
# client.key (a client certificate, for servers that ask for one). Valid 825 days.
# Needs only `openssl`.
set -eu

out=${1:?usage: generate.sh OUT_DIR [NAME...]}
shift
[ $# -gt 0 ] || set -- rabbitmq postgres mailpit localhost 127.0.0.1
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

names=""
for name in "$@"; do
    case "$name" in
        *[!0-9.]*) names="$names,DNS:$name" ;;
        *) names="$names,IP:$name" ;;
    esac
done
names=${names#,}

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# The CA: may sign certificates, nothing else.
key "$out/ca.key"
openssl req -x509 -new -key "$out/ca.key" -out "$out/ca.pem" -days 825 \
    -subj "/CN=signup-demo private CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"

# sign NAME KIND SUBJECT_ALT_NAMES EXTENDED_KEY_USAGE
sign() {
    key "$out/$1.key"
    openssl req -new -key "$out/$1.key" -out "$work/$1.csr" -subj "/CN=$2"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$4"
        [ -z "$3" ] || echo "subjectAltName=$3"
    } >"$work/$1.ext"
    openssl x509 -req -in "$work/$1.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
        -CAcreateserial -CAserial "$work/ca.srl" -out "$out/$1.pem" -days 825 \
        -extfile "$work/$1.ext" 2>/dev/null
}

sign server "$1" "$names" serverAuth
sign client "signup-demo service" "" clientAuth
chmod 600 "$out"/*.key
echo "wrote $out: ca.pem ca.key server.pem server.key client.pem client.key ($names)"
