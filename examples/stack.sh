# The example stack on this machine: a throwaway PostgreSQL with saml_jit, two
# customers' IdPs (pysaml2, each with its own fresh key: Example Corp and
# Globex) and the example application, all on 127.0.0.1. Sourced by scripts/example and scripts/e2e after scripts/setup
# and scripts/lib/cluster.sh; defines functions only.

EXAMPLES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EXAMPLE_VENV=$EXAMPLES/.venv

# example_venv: the Python packages of the app and the IdP (once).
example_venv() {
  local stamp=$EXAMPLE_VENV/.requirements
  if ! cmp -s "$EXAMPLES/requirements.txt" "$stamp"; then
    echo "[example] python venv: flask, psycopg, pysaml2"
    python3 -m venv "$EXAMPLE_VENV"
    "$EXAMPLE_VENV/bin/pip" install -q --disable-pip-version-check -r "$EXAMPLES/requirements.txt"
    cp "$EXAMPLES/requirements.txt" "$stamp"
  fi
}

# wait_for_url URL LOG: polls until URL answers (30 s), else prints LOG and fails.
wait_for_url() {
  local i
  for i in $(seq 1 150); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.2
  done
  echo "[example] $1 did not come up; its log:" >&2
  cat "$2" >&2
  return 1
}

# start_idp WORK NAME PORT USERS_JSON [--post-only]: one IdP with a key of
# its own, made now (the SP learns its certificate from the IdP's metadata).
start_idp() {
  local work=$1 name=$2 port=$3 users=$4 extra=("${@:5}") tag
  tag=$(basename "$users" .json)
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$name IdP" \
    -keyout "$work/$tag.key" -out "$work/$tag.crt" 2>/dev/null
  "$EXAMPLE_VENV/bin/python" "$EXAMPLES/idp/idp.py" --name "$name" --base-url "http://127.0.0.1:$port" \
    --port "$port" --key "$work/$tag.key" --cert "$work/$tag.crt" --users "$users" \
    --sp-metadata-url "$APP_URL/saml/metadata" "${extra[@]}" >"$work/$tag.log" 2>&1 &
  echo $! >"$work/$tag.pid"
  wait_for_url "http://127.0.0.1:$port/metadata" "$work/$tag.log"
}

# example_start WORK APP_PORT IDP_PORT IDP2_PORT: starts everything; exports
# APP_URL, IDP_URL (Example Corp), IDP2_URL (Globex), IDP_USERS (Example
# Corp's users file, reread on every login), PGHOST, PGPORT and EXAMPLE_DB.
example_start() {
  local work=$1 app_port=$2 idp_port=$3 idp2_port=$4
  local pg_port=$((20000 + RANDOM % 20000))
  export APP_URL=http://127.0.0.1:$app_port IDP_URL=http://127.0.0.1:$idp_port
  export IDP2_URL=http://127.0.0.1:$idp2_port
  export IDP_USERS=$work/users.json EXAMPLE_DB=example
  mkdir -p "$work"

  # Preloaded so that refused logins reach saml_jit.audit_log too.
  cluster_start "$work/cluster" "$pg_port" \
    "shared_preload_libraries = 'saml_jit'" "saml_jit.audit_database = '$EXAMPLE_DB'"
  psql -X -q -d postgres -c "CREATE DATABASE $EXAMPLE_DB"

  # Copies of the users files: the e2e test edits one as an IdP admin would.
  cp "$EXAMPLES/idp/users.json" "$IDP_USERS"
  cp "$EXAMPLES/idp/users-globex.json" "$work/users-globex.json"
  start_idp "$work" "Example Corp" "$idp_port" "$IDP_USERS"
  # Globex's IdP offers only an HTTP-POST SSO endpoint (as some products do).
  start_idp "$work" "Globex" "$idp2_port" "$work/users-globex.json" --post-only

  # The SP's own key pair: it signs Single Logout messages (and AuthnRequests
  # for IdPs that want them signed), and decrypts encrypted assertions.
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Example app SP" \
    -keyout "$work/sp.key" -out "$work/sp.crt" 2>/dev/null

  # The administrator's part: register the SP, import both IdPs' metadata,
  # map groups, create the application's role.
  psql -X -q -v ON_ERROR_STOP=1 -d "$EXAMPLE_DB" \
    -v sp_key="$(cat "$work/sp.key")" -v sp_cert="$(cat "$work/sp.crt")" \
    -v sp_entity_id="$APP_URL/saml/metadata" -v acs_url="$APP_URL/saml/acs" \
    -v slo_url="$APP_URL/saml/slo" \
    -v example_metadata="$(curl -sf "$IDP_URL/metadata")" \
    -v globex_metadata="$(curl -sf "$IDP2_URL/metadata")" \
    -f "$EXAMPLES/setup.sql" >"$work/setup.log" \
    || { cat "$work/setup.log"; return 1; }

  SAML_JIT_DSN="host=$PGHOST port=$PGPORT dbname=$EXAMPLE_DB user=example_app" PORT=$app_port \
    "$EXAMPLE_VENV/bin/python" "$EXAMPLES/app/app.py" >"$work/app.log" 2>&1 &
  echo $! >"$work/app.pid"
  wait_for_url "$APP_URL/" "$work/app.log"
}

# example_stop WORK: stops the app, the IdP and the cluster.
example_stop() {
  local work=$1 pid
  for pid in "$work/app.pid" "$work"/users*.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  cluster_stop "$work/cluster"
}
