#!/usr/bin/env bash
# A PostgreSQL server for the store tests: prints its URL on stdout, everything else on
# stderr, so that `TOKENHOST_TEST_DATABASE_URL=$(tests/postgres.sh) cargo test` works.
#
# With TOKENHOST_TEST_DATABASE_URL set, that server is used as it is. Otherwise, on a
# Debian machine (as root): installs postgresql if missing, starts its cluster, makes the
# role tokenhost_test and a fresh throwaway database tokenhost_test. Idempotent.
set -euo pipefail

if [[ -n "${TOKENHOST_TEST_DATABASE_URL:-}" ]]; then
    printf '%s\n' "$TOKENHOST_TEST_DATABASE_URL"
    exit 0
fi

log() { echo "postgres.sh: $*" >&2; }

if ! command -v pg_ctlcluster >/dev/null || ! command -v psql >/dev/null; then
    log "installing postgresql from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi

# The newest installed cluster (Debian 12: 15 main); create one if the package left none.
cluster=$(pg_lsclusters --no-header 2>/dev/null | sort -k1,1n | tail -n 1 || true)
if [[ -z "$cluster" ]]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
    log "creating cluster $version main"
    pg_createcluster "$version" main >&2
    cluster=$(pg_lsclusters --no-header | sort -k1,1n | tail -n 1)
fi
read -r version name port status _ <<<"$cluster"
if [[ "$status" != online* ]]; then
    log "starting cluster $version $name"
    pg_ctlcluster "$version" "$name" start >&2
fi

# A fixed password: the role can only reach a throwaway database on this machine.
password=tokenhost_test
as_postgres() { (cd / && runuser -u postgres -- psql -p "$port" -X -q -v ON_ERROR_STOP=1 "$@") >&2; }
for _ in $(seq 50); do
    (cd / && runuser -u postgres -- pg_isready -q -p "$port") && break
    sleep 0.2
done
as_postgres -d postgres <<SQL
DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tokenhost_test') THEN
        CREATE ROLE tokenhost_test LOGIN CREATEDB PASSWORD '$password';
    END IF;
END \$\$;
DROP DATABASE IF EXISTS tokenhost_test WITH (FORCE);
CREATE DATABASE tokenhost_test OWNER tokenhost_test;
SQL
log "database tokenhost_test ready on cluster $version $name (port $port)"
printf 'postgres://tokenhost_test:%s@127.0.0.1:%s/tokenhost_test\n' "$password" "$port"
