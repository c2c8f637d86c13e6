// The most-used Node.js SAML SP library as a baseline: @node-saml/node-saml
// 5.x (behind passport-saml) verifies and validates each response in an ACS
// loop, then pg records the assertion ID against replay, upserts the user
// and writes an audit row, in one transaction. One process per client.
//
// usage: node acs.mjs POOL_TSV COUNT CLIENTS DSN
// prints: logins tps p50_ms p99_ms

import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { SAML } from '@node-saml/node-saml';
import pg from 'pg';

const here = dirname(fileURLToPath(import.meta.url));
const CERT = readFileSync(join(here, '..', '..', 'pgrx-tests', 'fixtures', 'demo-idp.crt'), 'utf8');

const UPSERT = `
INSERT INTO saml_jit.users AS u (idp_id, subject, name_id, email, attributes, last_login_at, login_count)
VALUES (1, $1, $2, $3, $4, now(), 1)
ON CONFLICT (idp_id, subject) DO UPDATE
   SET email = EXCLUDED.email, attributes = EXCLUDED.attributes,
       last_login_at = now(), login_count = u.login_count + 1
RETURNING id`;

// libpq key=value DSN to pg's connection options.
function connection(dsn) {
  const o = Object.fromEntries(dsn.split(/\s+/).filter(Boolean).map((kv) => kv.split('=')));
  return { host: o.host, port: Number(o.port), user: o.user, database: o.dbname };
}

// A connected client and a configured SAML SP, then logins on request.
async function worker(dsn) {
  const saml = new SAML({
    callbackUrl: 'https://app.bench.example/acs',
    entryPoint: 'https://idp.bench.example/sso',
    issuer: 'https://app.bench.example/sp',
    audience: 'https://app.bench.example/sp',
    idpCert: CERT,
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: false,
    validateInResponseTo: 'never',
    acceptedClockSkewMs: 180_000,
  });
  const client = new pg.Client(connection(dsn));
  await client.connect();
  return async (responses) => {
    const latencies = [];
    for (const b64 of responses) {
      const t0 = process.hrtime.bigint();
      const { profile } = await saml.validatePostResponseAsync({ SAMLResponse: b64 });
      const assertionId = profile.getAssertion().Assertion.$.ID;
      const attributes = profile.attributes ?? {};
      const mail = attributes.mail ?? null;
      await client.query('BEGIN');
      const replay = await client.query(
        'INSERT INTO saml_jit.consumed_assertion (idp_id, assertion_id, valid_until) ' +
        "VALUES (1, $1, now() + interval '1 day') ON CONFLICT DO NOTHING RETURNING 1",
        [assertionId]);
      if (replay.rowCount !== 1) throw new Error('replay');
      const user = await client.query(UPSERT, [profile.nameID, profile.nameID,
        Array.isArray(mail) ? mail[0] : mail, JSON.stringify(attributes)]);
      await client.query(
        "INSERT INTO saml_jit.audit_log (event, idp_id, user_id, subject) VALUES ('login', 1, $1, $2)",
        [user.rows[0].id, profile.nameID]);
      await client.query('COMMIT');
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    await client.end();
    return latencies;
  };
}

if (process.argv[2] === '--worker') {
  const run = await worker(process.argv[3]);
  process.once('message', async (responses) => {
    const latencies = await run(responses);
    process.send(latencies, () => process.exit(0));
  });
  process.send('ready');
} else {
  const [pool, count, clients, dsn] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), process.argv[5]];
  const responses = readFileSync(pool, 'utf8').split('\n').filter(Boolean).map((l) => l.split('\t')[1]).slice(0, count);
  const children = Array.from({ length: clients }, () => fork(fileURLToPath(import.meta.url), ['--worker', dsn]));
  // Timing starts once every worker has loaded, configured and connected.
  await Promise.all(children.map((child) => new Promise((resolve) => child.once('message', resolve))));
  const start = process.hrtime.bigint();
  const results = await Promise.all(children.map((child, i) => new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => code && reject(new Error(`worker exited ${code}`)));
    child.send(responses.filter((_, n) => n % clients === i));
  })));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const lat = results.flat().sort((a, b) => a - b);
  const pick = (q) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))];
  console.log(`${lat.length} ${(lat.length / elapsed).toFixed(1)} ${pick(0.5).toFixed(2)} ${pick(0.99).toFixed(2)}`);
}
