# Throwaway PostgreSQL clusters for the demo, the integration tests and the
# benchmarks. Source this file; it defines functions only.

PG_MAJOR=${PG_MAJOR:-15}
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin

# initdb refuses to run as root: the server runs as postgres there.
as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi
}

# cluster_start DIR PORT [postgresql.conf lines...]: a new cluster in DIR,
# listening on 127.0.0.1:PORT and a socket in DIR. Exports PGHOST/PGPORT/PGUSER.
cluster_start() {
  local dir=$1 port=$2; shift 2
  mkdir -p "$dir"
  # mktemp makes 0700 directories: the server user must be able to reach DIR.
  chmod a+x "$(dirname "$dir")"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi
  as_server_user "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log"; return 1; }
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = '$dir'"
    echo "fsync = off"
    echo "max_connections = 100"
    for line in "$@"; do echo "$line"; done
  } | as_server_user tee -a "$dir/data/postgresql.conf" >/dev/null
  as_server_user "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null \
    || { cat "$dir/server.log"; return 1; }
  export PGHOST=$dir PGPORT=$port PGUSER=postgres
}

# cluster_stop DIR: stops the cluster (if running) and removes DIR.
cluster_stop() {
  local dir=$1
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_server_user "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

# install_extension [cargo pgrx install flags...]: builds saml_jit and installs
# it into the system PostgreSQL, with the frozen install scripts of earlier
# versions (sql/saml_jit--X.Y.Z.sql; cargo pgrx copies only the current one
# and the upgrade scripts), so CREATE EXTENSION ... VERSION 'X.Y.Z' works.
install_extension() {
  local sudo_flag=() sudo=()
  [ "$(id -u)" -eq 0 ] || { sudo_flag=(--sudo); sudo=(sudo); }
  cargo pgrx install --pg-config "$PG_BIN/pg_config" "${sudo_flag[@]}" "$@"
  local extdir
  extdir="$("$PG_BIN/pg_config" --sharedir)/extension"
  for frozen in sql/saml_jit--[0-9]*.[0-9]*.[0-9]*.sql; do
    # No match (a tree from before the first release, benchmarked by ref).
    [ -e "$frozen" ] || continue
    case $frozen in *--*--*) continue ;; esac
    "${sudo[@]}" install -m 644 "$frozen" "$extdir/"
  done
}
