"""The example application: what an application backend needs for SAML SSO
when saml_jit does the work inside PostgreSQL.

    GET  /               home page: "work e-mail" and a "Sign in with SSO" button
    GET  /login?email=   SP-initiated login: the e-mail's domain picks the
                         customer's IdP (table sso_tenant),
                         saml_jit_authn_request, then a redirect to that IdP
    POST /saml/acs       the Assertion Consumer Service: the posted
                         SAMLResponse goes to saml_jit_login, which verifies,
                         provisions and audits in one transaction
    GET  /saml/metadata  this SP's metadata for the IdP administrator
    GET  /profile        the provisioned user, groups and last audit rows
    POST /logout

Settings (environment): SAML_JIT_DSN (libpq string of the application's
role), SECRET_KEY, PORT, LISTEN (address to bind; 0.0.0.0 in a container).
"""

import json
import os
import secrets

import psycopg
from flask import Flask, abort, redirect, render_template, request, session, url_for

app = Flask(__name__)
app.secret_key = os.environ.get("SECRET_KEY") or secrets.token_hex(32)
# The session cookie is set by the answer to the IdP's cross-site POST and
# sent on this site's own navigation only.
app.config.update(SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_HTTPONLY=True)
DSN = os.environ.get("SAML_JIT_DSN", "dbname=app")


def db():
    # One connection per request keeps the example short; a real backend
    # would use a pool (psycopg_pool) the same way.
    return psycopg.connect(DSN, autocommit=True)


def local_path(relay_state):
    """RelayState comes back from the browser: only follow paths of this site."""
    if relay_state and relay_state.startswith("/") and not relay_state.startswith("//"):
        return relay_state
    return url_for("profile")


@app.get("/")
def home():
    return render_template("home.html", signed_in="user_id" in session)


@app.get("/login")
def login():
    email = request.args.get("email", "").strip().lower()
    domain = email.rpartition("@")[2]
    with db() as conn:
        tenant = conn.execute(
            "SELECT idp_entity_id FROM sso_tenant WHERE email_domain = %s", (domain,)
        ).fetchone()
        if tenant is None:
            error = f"No single sign-on is set up for {domain or 'that address'}."
            return render_template("home.html", error=error, email=email), 404
        row = conn.execute(
            "SELECT redirect_url FROM saml_jit_authn_request(%s, relay_state => %s)",
            (tenant[0], local_path(request.args.get("next"))),
        ).fetchone()
    return redirect(row[0])


@app.post("/saml/acs")
def acs():
    saml_response = request.form.get("SAMLResponse")
    if not saml_response:
        abort(400, "no SAMLResponse in the POST")
    try:
        with db() as conn:
            user = conn.execute(
                """SELECT user_id, idp_entity_id, action
                     FROM saml_jit_login(%s, client_addr => %s)""",
                (saml_response, request.remote_addr),
            ).fetchone()
    except psycopg.errors.InvalidAuthorizationSpecification as e:
        # SQLSTATE 28000: the response was refused. The reason code is stable
        # (API.md); the DETAIL says what the IdP administrator has to fix.
        reason = e.diag.message_primary.removeprefix("SAML response rejected: ")
        app.logger.warning("SAML login refused: %s (%s)", reason, e.diag.message_detail)
        return render_template("refused.html", reason=reason, detail=e.diag.message_detail), 403
    session.clear()
    session["user_id"] = str(user[0])
    session["idp"] = user[1]
    session["last_action"] = user[2]
    return redirect(local_path(request.form.get("RelayState")))


@app.get("/saml/metadata")
def metadata():
    with db() as conn:
        xml = conn.execute("SELECT saml_jit_sp_metadata()::text").fetchone()[0]
    return xml, 200, {"Content-Type": "application/samlmetadata+xml"}


@app.get("/profile")
def profile():
    if "user_id" not in session:
        return redirect(url_for("home"))
    with db() as conn:
        cur = conn.execute(
            """SELECT subject, email, display_name, title, groups, status, login_count,
                      created_at, last_login_at
                 FROM saml_jit.users WHERE id = %s""",
            (session["user_id"],),
        )
        user = dict(zip([c.name for c in cur.description], cur.fetchone() or ()))
        audit = conn.execute(
            """SELECT occurred_at, event, detail FROM saml_jit.audit_log
                WHERE user_id = %s ORDER BY id DESC LIMIT 8""",
            (session["user_id"],),
        ).fetchall()
    if user.get("status") != "active":
        # Deprovisioned (expired or disabled) since this session began, or gone.
        session.clear()
        return redirect(url_for("home"))
    return render_template(
        "profile.html",
        user=user,
        action=session.get("last_action"),
        idp=session.get("idp"),
        audit=[(t, event, json.dumps(detail, sort_keys=True)) for t, event, detail in audit],
    )


@app.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("home"))


if __name__ == "__main__":
    app.run(host=os.environ.get("LISTEN", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
