#!/usr/bin/env bash
# Start the machine's PostgreSQL 15 cluster and ensure the role the tests use exists.
# Idempotent: safe to run when the server is already up or the role already exists.
set -euo pipefail

role="${DRIFTLINE_PG_ROLE:-driftline}"
password="${DRIFTLINE_PG_PASSWORD:-driftline}"
version="${DRIFTLINE_PG_VERSION:-15}"

if ! command -v pg_ctlcluster >/dev/null; then
  echo "postgres.sh: pg_ctlcluster not found; install postgresql-${version}" >&2
  exit 1
fi

if ! pg_lsclusters --no-header | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi

for _ in $(seq 1 50); do
  runuser -u postgres -- pg_isready -q && break
  sleep 0.2
done

runuser -u postgres -- psql -v ON_ERROR_STOP=1 -q <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') THEN
    CREATE ROLE ${role} LOGIN CREATEDB PASSWORD '${password}';
  END IF;
END
\$\$;
SQL
if ! runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname = '${role}'" | grep -q 1; then
  runuser -u postgres -- createdb -O "$role" "$role"
fi
echo "postgresql+psycopg://${role}:${password}@127.0.0.1:5432/${role}"
