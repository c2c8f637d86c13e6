"""The example application: what an application backend needs for SAML SSO
when saml_jit does the work inside PostgreSQL.

    GET  /               home page: "work e-mail" and a "Sign in with SSO" button
    GET  /login?email=   SP-initiated login: the e-mail's domain picks the
                         customer's IdP (table organizations),
                         saml_jit_authn_request, then a redirect to that IdP
                         (or an auto-submitting form for an HTTP-POST-only IdP)
    POST /saml/acs       the Assertion Consumer Service: the posted
                         SAMLResponse goes to saml_jit_login, which verifies,
                         provisions and audits in one transaction
    GET  /saml/metadata  this SP's metadata for the IdP administrator
    GET  /profile        the application's account, organization and role
                         (written by its on_login hook), the saml_jit user
                         and its last audit rows; only while the session is
                         active (saml_jit_session_active)
    POST /logout         signs out: Single Logout through the IdP
                         (saml_jit_logout_request), or only here
                         (saml_jit_end_session) when the IdP has no SLO endpoint
    GET|POST /saml/slo   the Single Logout endpoint: the IdP's LogoutRequest
                         (it signed the user out everywhere) or its answer to
                         ours, verified by saml_jit_logout

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
    """Only follow paths of this site (RelayState is chosen by the visitor)."""
    if relay_state and relay_state.startswith("/") and not relay_state.startswith("//"):
        return relay_state
    return url_for("profile")


@app.get("/")
def home():
    return render_template("home.html", signed_in="saml_session" in session)


@app.get("/login")
def login():
    email = request.args.get("email", "").strip().lower()
    domain = email.rpartition("@")[2]
    with db() as conn:
        tenant = conn.execute(
            "SELECT idp_entity_id FROM organizations WHERE email_domain = %s", (domain,)
        ).fetchone()
        if tenant is None:
            error = f"No single sign-on is set up for {domain or 'that address'}."
            return render_template("home.html", error=error, email=email), 404
        relay_state = local_path(request.args.get("next"))
        binding, redirect_url, post_url, saml_request = conn.execute(
            """SELECT binding, redirect_url, post_url, saml_request
                 FROM saml_jit_authn_request(%s, relay_state => %s)""",
            (tenant[0], relay_state),
        ).fetchone()
    if binding == "post":
        # An IdP with only an HTTP-POST SSO endpoint: the browser posts the
        # request itself (an auto-submitting form).
        return render_template(
            "post.html", url=post_url, saml_request=saml_request, relay_state=relay_state
        )
    return redirect(redirect_url)


# What a person is told for the refusals they can do something about; the
# others get the generic page. The DETAIL is for their administrator.
REFUSALS = {
    "not_entitled": "Your organization has not given you access to this application.",
    "email_domain_not_allowed": "Your identity provider may not sign in this e-mail address here.",
    "user_disabled": "Your account has been disabled.",
}


@app.post("/saml/acs")
def acs():
    saml_response = request.form.get("SAMLResponse")
    if not saml_response:
        abort(400, "no SAMLResponse in the POST")
    try:
        with db() as conn:
            user = conn.execute(
                """SELECT user_id, idp_entity_id, action, session_id, relay_state
                     FROM saml_jit_login(%s, client_addr => %s)""",
                (saml_response, request.remote_addr),
            ).fetchone()
    except psycopg.errors.InvalidAuthorizationSpecification as e:
        # SQLSTATE 28000: the response was refused. The reason code is stable
        # (API.md); the DETAIL says what the IdP administrator has to fix, and
        # for provisioning_refused it is the message of our own on_login hook.
        reason = e.diag.message_primary.removeprefix("SAML response rejected: ")
        detail = e.diag.message_detail
        app.logger.warning("SAML login refused: %s (%s)", reason, detail)
        message = detail if reason == "provisioning_refused" else REFUSALS.get(reason)
        return render_template("refused.html", reason=reason, detail=detail, message=message), 403
    session.clear()
    session["user_id"] = str(user[0])
    session["idp"] = user[1]
    session["last_action"] = user[2]
    session["saml_session"] = str(user[3])
    # Where the login started (stored with the AuthnRequest), not the
    # RelayState the browser posted back.
    return redirect(local_path(user[4]))


@app.get("/saml/metadata")
def metadata():
    with db() as conn:
        xml = conn.execute("SELECT saml_jit_sp_metadata()::text").fetchone()[0]
    return xml, 200, {"Content-Type": "application/samlmetadata+xml"}


@app.get("/profile")
def profile():
    if "saml_session" not in session:
        return redirect(url_for("home"))
    with db() as conn:
        # Ended by logout, by the customer disabling the user, by expiry or
        # by the IdP's SessionNotOnOrAfter: the application's session ends too.
        if not conn.execute(
            "SELECT saml_jit_session_active(%s)", (session["saml_session"],)
        ).fetchone()[0]:
            session.clear()
            return redirect(url_for("home"))
        cur = conn.execute(
            """SELECT a.id AS account_id, a.email, a.display_name, a.invited_at IS NOT NULL AS invited,
                      o.name AS organization, m.role, u.subject, u.title, u.groups, u.login_count
                 FROM accounts a
                 JOIN saml_jit.users u ON u.id = a.saml_user_id
                 JOIN organizations o ON o.idp_entity_id = %(idp)s
                 JOIN memberships m ON m.account_id = a.id AND m.organization_id = o.id
                WHERE a.saml_user_id = %(user)s""",
            {"idp": session["idp"], "user": session["user_id"]},
        )
        user = dict(zip([c.name for c in cur.description], cur.fetchone() or ()))
        audit = conn.execute(
            """SELECT occurred_at, event, detail FROM saml_jit.audit_log
                WHERE user_id = %s ORDER BY id DESC LIMIT 8""",
            (session["user_id"],),
        ).fetchall()
    return render_template(
        "profile.html",
        user=user,
        action=session.get("last_action"),
        idp=session.get("idp"),
        audit=[(t, event, json.dumps(detail, sort_keys=True)) for t, event, detail in audit],
    )


@app.post("/logout")
def logout():
    saml_session = session.pop("saml_session", None)
    session.clear()
    if saml_session is None:
        return redirect(url_for("home"))
    with db() as conn:
        try:
            # The session ends here at once; the browser then carries the
            # signed LogoutRequest to the IdP, whose answer comes to /saml/slo.
            _, redirect_url, post_url, saml_request = conn.execute(
                "SELECT * FROM saml_jit_logout_request(%s, relay_state => '/')", (saml_session,)
            ).fetchone()
        except psycopg.errors.ObjectNotInPrerequisiteState:
            # The IdP has no Single Logout endpoint: sign out here only.
            conn.execute("SELECT saml_jit_end_session(%s)", (saml_session,))
            return redirect(url_for("home"))
    if post_url:
        return render_template("post.html", title="Signing you out", url=post_url,
                               saml_request=saml_request, relay_state="/")
    return redirect(redirect_url)


@app.route("/saml/slo", methods=["GET", "POST"])
def single_logout():
    """The IdP's Single Logout messages. By HTTP-Redirect the raw query
    string goes to saml_jit_logout (its signature covers the octets exactly
    as sent); by HTTP-POST the form value does."""
    if request.method == "GET":
        args = (None, request.query_string.decode("ascii", "replace"))
    else:
        args = (request.form.get("SAMLRequest") or request.form.get("SAMLResponse"), None)
    try:
        with db() as conn:
            kind, ended, reply_url, post_url, saml_response, relay_state = conn.execute(
                """SELECT kind, ended_sessions, reply_url, reply_post_url, reply_saml_response, relay_state
                     FROM saml_jit_logout(%s, %s)""",
                args,
            ).fetchone()
    except psycopg.errors.InvalidAuthorizationSpecification as e:
        reason = e.diag.message_primary.removeprefix("SAML logout message rejected: ")
        app.logger.warning("SAML logout refused: %s (%s)", reason, e.diag.message_detail)
        return render_template("refused.html", reason=reason, detail=e.diag.message_detail,
                               message=None, title="Sign-out refused"), 403
    # This browser's session is over when its saml_jit session ended (and
    # /profile would find it inactive anyway).
    if kind == "logout_response" or session.get("saml_session") in {str(s) for s in ended}:
        session.clear()
    if kind == "logout_response":
        return redirect(local_path(relay_state or "/"))
    if post_url:
        return render_template("post.html", title="Signing you out", url=post_url, field="SAMLResponse",
                               saml_request=saml_response, relay_state=relay_state or "")
    if reply_url:
        return redirect(reply_url)
    return redirect(url_for("home"))


if __name__ == "__main__":
    app.run(host=os.environ.get("LISTEN", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
