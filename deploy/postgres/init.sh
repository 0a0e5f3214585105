#!/bin/sh
# Runs once, when the compose PostgreSQL initialises an empty data directory (the image
# runs every script in /docker-entrypoint-initdb.d): a role and a database per service,
# each password from that service's secret file. The services connect as these roles;
# the superuser (password in the postgres-password secret) is for the operator only.
set -eu
secrets="${SECRETS_DIR:-/run/secrets}"
for service in registration email profile; do
    password=$(cat "$secrets/$service-db-password")
    psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v role="$service" -v password="$password" \
        -f /etc/signup/service-role.sql
done
