"""The baseline an application runs today: python3-saml verifies each
response in the ACS handler, then psycopg records the assertion ID against
replay, upserts the user and writes an audit row, in one transaction.

usage: python3_saml_acs.py POOL_TSV COUNT CLIENTS DSN
prints: logins tps p50_ms p99_ms
"""

import multiprocessing as mp
import os
import sys
import time

import psycopg
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings

HERE = os.path.dirname(os.path.abspath(__file__))
CERT = "".join(
    l for l in open(os.path.join(HERE, "..", "pgrx-tests", "fixtures", "demo-idp.crt")).read().splitlines()
    if not l.startswith("-----")
)
SETTINGS = {
    "strict": True,
    "sp": {
        "entityId": "https://app.bench.example/sp",
        "assertionConsumerService": {
            "url": "https://app.bench.example/acs",
            "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
        },
    },
    "idp": {
        "entityId": "https://idp.bench.example/",
        "singleSignOnService": {
            "url": "https://idp.bench.example/sso",
            "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
        },
        "x509cert": CERT,
    },
    "security": {"wantAssertionsSigned": True},
}
REQUEST = {"https": "on", "http_host": "app.bench.example", "script_name": "/acs", "server_port": "443"}

UPSERT = """
INSERT INTO saml_jit.users AS u (idp_id, subject, name_id, email, attributes, last_login_at, login_count)
VALUES (1, %s, %s, %s, %s, now(), 1)
ON CONFLICT (idp_id, subject) DO UPDATE
   SET email = EXCLUDED.email, attributes = EXCLUDED.attributes,
       last_login_at = now(), login_count = u.login_count + 1
RETURNING id"""


def worker(args):
    responses, dsn = args
    settings = OneLogin_Saml2_Settings(SETTINGS)
    latencies = []
    with psycopg.connect(dsn) as conn:
        for b64 in responses:
            t0 = time.perf_counter()
            resp = OneLogin_Saml2_Response(settings, b64)
            resp.is_valid(REQUEST, raise_exceptions=True)
            name_id = resp.get_nameid()
            attrs = resp.get_attributes()
            with conn.transaction():
                cur = conn.execute(
                    "INSERT INTO saml_jit.consumed_assertion (idp_id, assertion_id, valid_until) "
                    "VALUES (1, %s, now() + interval '1 day') ON CONFLICT DO NOTHING RETURNING 1",
                    (resp.get_assertion_id(),),
                )
                if cur.fetchone() is None:
                    raise RuntimeError("replay")
                user_id = conn.execute(
                    UPSERT, (name_id, name_id, (attrs.get("mail") or [None])[0], psycopg.types.json.Jsonb(attrs))
                ).fetchone()[0]
                conn.execute(
                    "INSERT INTO saml_jit.audit_log (event, idp_id, user_id, subject) VALUES ('login', 1, %s, %s)",
                    (user_id, name_id),
                )
            latencies.append(time.perf_counter() - t0)
    return latencies


def main():
    pool, count, clients, dsn = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    responses = [line.split("\t")[1] for line in open(pool)][:count]
    slices = [(responses[i::clients], dsn) for i in range(clients)]
    start = time.perf_counter()
    with mp.Pool(clients) as p:
        results = p.map(worker, slices)
    elapsed = time.perf_counter() - start
    lat = sorted(l for r in results for l in r)
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    print(f"{len(lat)} {len(lat) / elapsed:.1f} {pick(0.5):.2f} {pick(0.99):.2f}")


if __name__ == "__main__":
    main()
