// A person's SSO session, driven in headless Chromium (Debian's /usr/bin/chromium)
// against the example stack that scripts/e2e starts: the example app, the
// pysaml2 IdP with its login form, PostgreSQL with saml_jit.
//
// Environment: APP_URL, IDP_URL and IDP2_URL (two customers' IdPs: Example
// Corp and Globex), IDP_USERS (Example Corp's users file), SCREENSHOTS
// (directory for one PNG per step), CHROMIUM (optional path); PGHOST, PGPORT
// and EXAMPLE_DB for the administrator's psql.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const APP_URL = required('APP_URL');
const IDP_URL = required('IDP_URL');
const IDP2_URL = required('IDP2_URL');
const IDP_USERS = required('IDP_USERS');
const SCREENSHOTS = required('SCREENSHOTS');

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this test through scripts/e2e`);
  return value;
}

let browser;
let page;
// The body of every POST the browser sends to the ACS, in order.
const acsPosts = [];
// Every Single Logout message the browser carries: "METHOD URL-without-query".
const sloHops = [];

async function shot(name) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

// Starts at the app with a work e-mail, which picks the customer's IdP.
async function startSso(email, idpUrl) {
  await page.goto(`${APP_URL}/`);
  await page.fill('#email', email);
  await page.click('#sso');
  // Example Corp's IdP takes the request by HTTP-Redirect; Globex's has
  // only an HTTP-POST endpoint, which the app's auto-submitting form posts to.
  await page.waitForURL((url) => url.href.startsWith(`${idpUrl}/sso/`));
  await page.waitForSelector('#username');
}

// Signs in at the IdP's form; the browser ends on the app's answer.
async function signIn(email, username, password, idpUrl = IDP_URL) {
  await startSso(email, idpUrl);
  await page.fill('#username', username);
  await page.fill('#password', password);
  // The IdP's page posts the SAMLResponse to the ACS by itself; the ACS then
  // redirects (signed in) or answers with an error page.
  await Promise.all([
    page.waitForResponse((r) => r.url() === `${APP_URL}/saml/acs`),
    page.click('button[type=submit]'),
  ]);
  await page.waitForLoadState('networkidle');
}

// Signs out (Single Logout through the IdP): done when the browser, back
// from the IdP, has loaded the app's home page again.
async function signOut() {
  await page.goto(`${APP_URL}/`);
  const button = page.locator('header button');
  if (await button.count()) {
    await Promise.all([
      page.waitForResponse((r) => r.url() === `${APP_URL}/` && r.request().method() === 'GET'),
      button.click(),
    ]);
    await page.waitForLoadState('networkidle');
  }
}

function editIdpUser(username, edit) {
  const users = JSON.parse(readFileSync(IDP_USERS, 'utf8'));
  edit(users[username].attributes);
  writeFileSync(IDP_USERS, JSON.stringify(users, null, 2));
}

// What the application's administrator runs in psql.
function adminSql(sql) {
  return execFileSync('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-U', 'postgres',
    '-d', required('EXAMPLE_DB'), '-c', sql], { encoding: 'utf8' }).trim();
}

async function auditEvents() {
  return page.locator('#audit td.event').allTextContents();
}

describe('SP-initiated SSO through the example app', () => {
  before(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
    });
    page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
    page.on('request', (request) => {
      if (request.method() === 'POST' && request.url() === `${APP_URL}/saml/acs`) {
        acsPosts.push(request.postData());
      }
      if (/\/(saml\/)?slo(\/|\?|$)/.test(new URL(request.url()).pathname + '?')) {
        sloHops.push(`${request.method()} ${request.url().split('?')[0]}`);
      }
    });
  });

  after(async () => {
    await browser?.close();
  });

  test('an unauthenticated visitor is sent to the IdP with an AuthnRequest', async () => {
    await page.goto(`${APP_URL}/`);
    await page.fill('#email', 'ada@example.com');
    await shot('01-app-home');
    await page.click('#sso');
    await page.waitForURL(`${IDP_URL}/sso/redirect?**`);
    const url = new URL(page.url());
    assert.ok(url.searchParams.get('SAMLRequest'), 'the redirect carries a SAMLRequest');
    assert.equal(url.searchParams.get('RelayState'), '/profile');
    assert.match(await page.locator('main').innerText(), /Sign in to Example Corp/);
    assert.match(await page.locator('main').innerText(), /Requested by .*\/saml\/metadata/);
    await shot('02-idp-login-form');
  });

  test('a wrong password stays at the IdP', async () => {
    await page.fill('#username', 'ada');
    await page.fill('#password', 'guess');
    await page.click('button[type=submit]');
    await page.waitForLoadState('networkidle');
    assert.ok(page.url().startsWith(IDP_URL), page.url());
    assert.match(await page.locator('.error').innerText(), /Wrong username or password/);
    assert.equal(acsPosts.length, 0, 'nothing was posted to the application');
  });

  test('the first login creates the user with its groups and audit rows', async () => {
    await signIn('ada@example.com', 'ada', 'correct horse battery staple');
    assert.equal(page.url(), `${APP_URL}/profile`, 'RelayState brought the browser back to /profile');
    assert.match(await page.locator('#action').innerText(), /account created/);
    assert.equal(await page.locator('#title').innerText(), 'Analyst');
    const groups = await page.locator('#groups .badge').allTextContents();
    assert.deepEqual(groups.sort(), ['app:developer', 'app:member']);
    // The application's own tables, written by its on_login hook: the
    // account the administrator invited is linked, not duplicated.
    assert.equal(adminSql("SELECT count(*) FROM accounts WHERE email = 'ada@example.com'"), '1');
    const invited = adminSql("SELECT id FROM accounts WHERE email = 'ada@example.com' AND invited_at IS NOT NULL");
    assert.equal(await page.locator('#account-id').innerText(), `#${invited} invited, linked on first sign-in`);
    assert.equal(await page.locator('#organization').innerText(), 'Example Corp');
    assert.equal(await page.locator('#role').innerText(), 'developer');
    assert.equal(await page.locator('#email').innerText(), 'ada@example.com');
    assert.equal(await page.locator('#subject').innerText(), 'u-10815');
    assert.equal(await page.locator('#idp').innerText(), `${IDP_URL}/metadata`);
    assert.deepEqual((await auditEvents()).sort(), ['created', 'login']);
    await shot('03-profile-created');
  });

  test('after the IdP changes an attribute, the next login updates the user', async () => {
    // Signing out is Single Logout through the IdP, by HTTP-Redirect: the
    // signed LogoutRequest goes there, its signed answer comes back.
    sloHops.length = 0;
    await signOut();
    assert.deepEqual(sloHops, [`GET ${IDP_URL}/slo/redirect`, `GET ${APP_URL}/saml/slo`]);
    assert.equal(adminSql("SELECT count(*) FROM saml_jit.session WHERE ended_by = 'sp_logout'"), '1',
      'signing out ended the saml_jit session');
    assert.equal(adminSql('SELECT status FROM saml_jit.logout_request WHERE answered_at IS NOT NULL'),
      'Success', "the IdP's signed LogoutResponse was verified and recorded");
    editIdpUser('ada', (a) => {
      a.title = ['Principal Analyst'];
      a.memberOf = ['engineering', 'staff', 'auditors'];
    });
    await signIn('ada@example.com', 'ada', 'correct horse battery staple');
    assert.match(await page.locator('#action').innerText(), /account updated/);
    assert.equal(await page.locator('#title').innerText(), 'Principal Analyst');
    const groups = await page.locator('#groups .badge').allTextContents();
    assert.deepEqual(groups.sort(), ['app:developer', 'app:member', 'auditors']);
    assert.equal(await page.locator('#logins').innerText(), '2');
    const events = await auditEvents();
    assert.deepEqual(events.slice(0, 2).sort(), ['login', 'updated']);
    const audit = await page.locator('#audit').innerText();
    assert.match(audit, /"old": "Analyst"/);
    assert.match(audit, /"new": "Principal Analyst"/);
    await shot('04-profile-updated');
  });

  test('the IdP signing the user out everywhere ends the session here (IdP-initiated, HTTP-Redirect)', async () => {
    await page.goto(`${APP_URL}/profile`);
    assert.equal(await page.locator('#email').innerText(), 'ada@example.com', 'signed in');
    const session = adminSql("SELECT id FROM saml_jit.session WHERE ended_at IS NULL");
    // At the IdP, Ada chooses "Sign out of all applications": its signed
    // LogoutRequest comes to the app's SLO endpoint, whose signed answer goes back.
    await page.goto(`${IDP_URL}/account?user=ada`);
    sloHops.length = 0;
    await Promise.all([page.waitForSelector('#slo-status'), page.click('#logout-everywhere')]);
    assert.deepEqual(sloHops, [`POST ${IDP_URL}/slo/initiate`, `GET ${APP_URL}/saml/slo`,
      `GET ${IDP_URL}/slo/redirect`]);
    assert.equal(await page.locator('#slo-status').innerText(), 'Success');
    await shot('05-idp-initiated-logout');
    assert.equal(adminSql(`SELECT ended_by FROM saml_jit.session WHERE id = '${session}'`), 'idp_logout');
    await page.goto(`${APP_URL}/profile`);
    assert.equal(page.url(), `${APP_URL}/`, 'the application session is over');
  });

  test('a tampered SAMLResponse is refused with a clear error page', async () => {
    await signOut();
    // The browser's POST to the ACS is rewritten in flight: the signed title
    // is changed, as an attacker holding a valid response would try.
    await page.route(`${APP_URL}/saml/acs`, async (route) => {
      const form = new URLSearchParams(route.request().postData());
      const xml = Buffer.from(form.get('SAMLResponse'), 'base64').toString('utf8');
      const forged = xml.replace('Principal Analyst', 'Administrator');
      assert.notEqual(forged, xml, 'the response carries the title to forge');
      form.set('SAMLResponse', Buffer.from(forged, 'utf8').toString('base64'));
      await route.continue({ postData: form.toString() });
    });
    try {
      await signIn('ada@example.com', 'ada', 'correct horse battery staple');
    } finally {
      await page.unroute(`${APP_URL}/saml/acs`);
    }
    assert.equal(page.url(), `${APP_URL}/saml/acs`);
    assert.match(await page.locator('h1').innerText(), /Sign-in refused/);
    assert.equal(await page.locator('#reason').innerText(), 'signature_invalid');
    assert.ok((await page.locator('#detail').innerText()).length > 20, 'the DETAIL says what failed');
    assert.equal(await page.locator('header button').count(), 0, 'no session was started');
    await shot('06-tampered-refused');
  });

  test('a response posted a second time is refused as a replay', async () => {
    // The untampered response of the second login, posted again by a form
    // the way a browser's back button or an eavesdropper would.
    const replayed = new URLSearchParams(acsPosts[1]).get('SAMLResponse');
    assert.ok(replayed, 'the second login was captured');
    await page.goto(`${APP_URL}/`);
    await page.evaluate(([action, value]) => {
      const form = document.createElement('form');
      form.method = 'post';
      form.action = action;
      const input = document.createElement('input');
      input.type = 'hidden';
      input.name = 'SAMLResponse';
      input.value = value;
      form.appendChild(input);
      document.body.appendChild(form);
      form.submit();
    }, [`${APP_URL}/saml/acs`, replayed]);
    await page.waitForURL(`${APP_URL}/saml/acs`);
    await page.waitForLoadState('networkidle');
    assert.equal(await page.locator('#reason').innerText(), 'replay');
    await shot('07-replay-refused');
  });

  test('an e-mail domain without single sign-on is told so', async () => {
    await page.goto(`${APP_URL}/`);
    await page.fill('#email', 'someone@initech.example');
    await page.click('#sso');
    await page.waitForLoadState('networkidle');
    assert.ok(page.url().startsWith(`${APP_URL}/login`), page.url());
    assert.match(await page.locator('#error').innerText(), /No single sign-on is set up for initech\.example/);
  });

  test("another customer's IdP with the same NameID gets a separate account", async () => {
    // Globex's IdP says NameID u-10815 too: users are keyed by (IdP, subject),
    // so this is a new user, and Ada's account is untouched. Its metadata
    // offers only an HTTP-POST SSO endpoint: the request was posted.
    await startSso('hank@globex.example', IDP2_URL);
    assert.equal(page.url(), `${IDP2_URL}/sso/post`, 'the AuthnRequest went by HTTP-POST');
    await signIn('hank@globex.example', 'hank', 'globex rules', IDP2_URL);
    assert.equal(page.url(), `${APP_URL}/profile`);
    assert.match(await page.locator('#action').innerText(), /account created/);
    assert.equal(await page.locator('#idp').innerText(), `${IDP2_URL}/metadata`);
    assert.equal(await page.locator('#subject').innerText(), 'u-10815');
    assert.equal(await page.locator('#email').innerText(), 'hank@globex.example');
    assert.deepEqual(await page.locator('#groups .badge').allTextContents(), ['app:member']);
    assert.equal(await page.locator('#organization').innerText(), 'Globex');
    assert.equal(await page.locator('#role').innerText(), 'member');
    await shot('08-second-customer');

    await signOut();
    await signIn('ada@example.com', 'ada', 'correct horse battery staple');
    assert.match(await page.locator('#action').innerText(), /account updated/);
    assert.equal(await page.locator('#email').innerText(), 'ada@example.com');
    assert.equal(await page.locator('#title').innerText(), 'Principal Analyst');
  });

  test('a user disabled by the customer loses the session and cannot sign in again', async () => {
    await page.goto(`${APP_URL}/profile`);
    assert.equal(await page.locator('#email').innerText(), 'ada@example.com', 'still signed in');
    // The customer's offboarding list, as the administrator applies it.
    const outcome = adminSql(
      `SELECT outcome FROM saml_jit_disable_users('${IDP_URL}/metadata', ARRAY['u-10815'])`);
    assert.equal(outcome, 'disabled');
    await page.goto(`${APP_URL}/profile`);
    assert.equal(page.url(), `${APP_URL}/`, 'saml_jit_session_active: the session ended with the account');
    assert.equal(adminSql(
      "SELECT count(*) FROM saml_jit.session s JOIN saml_jit.users u ON u.id = s.user_id " +
      "WHERE u.subject = 'u-10815' AND u.status = 'disabled' AND s.ended_by = 'user_disabled'"), '1');
    await signIn('ada@example.com', 'ada', 'correct horse battery staple');
    assert.equal(await page.locator('#reason').innerText(), 'user_disabled');
    await shot('09-disabled-refused');
    // Globex's user with the same NameID is another account, still active.
    await signIn('hank@globex.example', 'hank', 'globex rules', IDP2_URL);
    assert.equal(await page.locator('#email').innerText(), 'hank@globex.example');
  });

  test("a second customer's IdP cannot vouch for the first customer's e-mail", async () => {
    await signOut();
    const before = adminSql('SELECT count(*), max(saml_user_id::text) FROM accounts');
    // Globex's IdP signs in its own user, but asserts an Example Corp address.
    await signIn('someone@globex.example', 'mallory', 'not my domain', IDP2_URL);
    assert.equal(await page.locator('#reason').innerText(), 'email_domain_not_allowed');
    assert.match(await page.locator('#message').innerText(), /may not sign in this e-mail address/);
    assert.match(await page.locator('#detail').innerText(), /globex\.example/);
    assert.equal(adminSql('SELECT count(*), max(saml_user_id::text) FROM accounts'), before,
      'no account created, Ada\'s untouched');
    assert.equal(adminSql("SELECT count(*) FROM saml_jit.users WHERE subject = 'u-66666'"), '0');
    await shot('10-email-domain-refused');
  });

  test('a user without the required group sees a clear refusal', async () => {
    await signOut();
    await signIn('temp@globex.example', 'temp', 'summer intern', IDP2_URL);
    assert.equal(await page.locator('#reason').innerText(), 'not_entitled');
    assert.equal(await page.locator('#message').innerText(),
      'Your organization has not given you access to this application.');
    assert.match(await page.locator('#detail').innerText(), /app:member.*interns/);
    assert.equal(adminSql("SELECT count(*) FROM accounts WHERE email = 'temp@globex.example'"), '0');
    await shot('11-not-entitled');
  });

  test("the application's hook refusing a suspended organization leaves nothing behind", async () => {
    await signOut();
    adminSql("UPDATE organizations SET suspended = true WHERE name = 'Globex'");
    const state = () => adminSql(
      "SELECT u.login_count || '/' || (SELECT count(*) FROM saml_jit.session s WHERE s.user_id = u.id) || '/' || " +
      "(SELECT count(*) FROM memberships) FROM saml_jit.users u " +
      "JOIN saml_jit.identity_provider i ON i.id = u.idp_id WHERE i.entity_id = '" + IDP2_URL + "/metadata' " +
      "AND u.subject = 'u-10815'");
    const before = state();
    try {
      await signIn('hank@globex.example', 'hank', 'globex rules', IDP2_URL);
      assert.equal(await page.locator('#reason').innerText(), 'provisioning_refused');
      assert.equal(await page.locator('#message').innerText(),
        'Globex is suspended. Ask your administrator to contact billing.');
      assert.equal(state(), before, 'no login counted, no session, no membership change');
      await shot('12-organization-suspended');
    } finally {
      adminSql("UPDATE organizations SET suspended = false WHERE name = 'Globex'");
    }
    await signIn('hank@globex.example', 'hank', 'globex rules', IDP2_URL);
    assert.equal(await page.locator('#organization').innerText(), 'Globex');
  });

  test('signing out goes through a POST-only IdP (SP-initiated, HTTP-POST)', async () => {
    await page.goto(`${APP_URL}/profile`);
    assert.equal(await page.locator('#email').innerText(), 'hank@globex.example', 'signed in');
    sloHops.length = 0;
    await signOut();
    assert.deepEqual(sloHops, [`POST ${IDP2_URL}/slo/post`, `POST ${APP_URL}/saml/slo`]);
    assert.equal(adminSql(
      "SELECT s.ended_by || '/' || r.status FROM saml_jit.logout_request r " +
      'JOIN saml_jit.session s ON s.id = r.session_id ORDER BY r.created_at DESC LIMIT 1'), 'sp_logout/Success');
  });

  test('the POST-only IdP signing the user out everywhere ends the session here', async () => {
    await signIn('hank@globex.example', 'hank', 'globex rules', IDP2_URL);
    assert.equal(await page.locator('#email').innerText(), 'hank@globex.example');
    await page.goto(`${IDP2_URL}/account?user=hank`);
    sloHops.length = 0;
    await Promise.all([page.waitForSelector('#slo-status'), page.click('#logout-everywhere')]);
    assert.deepEqual(sloHops, [`POST ${IDP2_URL}/slo/initiate`, `POST ${APP_URL}/saml/slo`,
      `POST ${IDP2_URL}/slo/post`]);
    assert.equal(await page.locator('#slo-status').innerText(), 'Success');
    await shot('13-idp-initiated-logout-post');
    await page.goto(`${APP_URL}/profile`);
    assert.equal(page.url(), `${APP_URL}/`, 'the application session is over');
    assert.equal(adminSql(
      "SELECT count(*) FROM saml_jit.audit_log WHERE event = 'logout' AND detail ->> 'kind' = 'logout_request' " +
      "AND detail ->> 'binding' = 'post'"), '1');
  });
});
