#!/bin/sh
# Entry point of the saml_jit image, with the environment of the official
# postgres image: POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD
# is trust), POSTGRES_USER (postgres), POSTGRES_DB (= user), PGDATA (a
# volume), PGPORT (5432). On first start: initdb, saml_jit preloaded with its
# audit writer pointed at POSTGRES_DB, CREATE EXTENSION saml_jit there. Then
# PostgreSQL runs in the foreground as the postgres user, with any arguments
# (for example -c shared_preload_libraries=pg_cron,saml_jit).
set -eu
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
bin=/usr/lib/postgresql/15/bin
as_postgres() { su postgres -s /bin/sh -c "$*"; }
mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    echo "saml_jit image: set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust for tests)" >&2
    exit 1
  fi
  pwfile=$(mktemp) && chown postgres "$pwfile"
  printf '%s' "${POSTGRES_PASSWORD:-unused}" > "$pwfile"
  as_postgres "$bin/initdb -D '$PGDATA' -U '$POSTGRES_USER' --pwfile='$pwfile' -E UTF8 \
    --auth-local=trust --auth-host='$POSTGRES_HOST_AUTH_METHOD'" >/dev/null
  rm -f "$pwfile"
  {
    echo "listen_addresses = '*'"
    echo "shared_preload_libraries = 'saml_jit'"
    echo "saml_jit.audit_database = '$POSTGRES_DB'"
  } >> "$PGDATA/postgresql.conf"
  echo "host all all all $POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
  as_postgres "$bin/pg_ctl -D '$PGDATA' -o '-c listen_addresses= -p $PGPORT' -w start" >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    as_postgres "psql -X -q -p $PGPORT -U '$POSTGRES_USER' -d postgres -c 'CREATE DATABASE \"$POSTGRES_DB\"'"
  fi
  as_postgres "psql -X -q -p $PGPORT -U '$POSTGRES_USER' -d '$POSTGRES_DB' -c 'CREATE EXTENSION saml_jit'"
  as_postgres "$bin/pg_ctl -D '$PGDATA' -m fast -w stop" >/dev/null
fi
# setpriv (util-linux) drops to postgres and execs: postgres is PID 1 and gets
# docker stop's SIGTERM itself (a smart shutdown).
# Arguments are passed on to postgres (a leading "postgres" is dropped, as
# `command: postgres -c ...` in compose files has it).
[ "${1:-}" = postgres ] && shift
exec setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$PGDATA" -p "$PGPORT" "$@"
