# The benchmarks' Python: python3-saml with lxml and xmlsec built from source
# against the system libxml2/libxmlsec1 (their versions must match), psycopg.
# Source this file; it creates bench/.venv when missing.
BENCH_VENV=bench/.venv
if ! "$BENCH_VENV/bin/python" -c "import onelogin.saml2, psycopg, xmlsec" 2>/dev/null; then
  printf '\033[1m[bench]\033[0m %s\n' "python venv: python3-saml, lxml and xmlsec from source (a few minutes, once)" >&2
  dpkg-query -W -f='${Status}' libxslt1-dev 2>/dev/null | grep -q "ok installed" \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libxml2-dev libxslt1-dev >/dev/null; }
  rm -rf "$BENCH_VENV"
  python3 -m venv "$BENCH_VENV"
  "$BENCH_VENV/bin/pip" install -q --disable-pip-version-check --no-binary lxml,xmlsec lxml xmlsec python3-saml "psycopg[binary]"
fi
