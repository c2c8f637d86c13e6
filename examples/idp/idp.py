"""A small but real SAML 2.0 IdP for the example: pysaml2 (PyPI) behind a
login form, signing with its own key, the way a customer's Okta or Keycloak
would answer the example application.

    GET  /metadata       the IdP's metadata (imported by the SP with
                         saml_jit_import_idp_metadata)
    GET  /sso/redirect   the HTTP-Redirect SSO endpoint: parses the
                         AuthnRequest and shows the login form
    POST /sso/post       the same for HTTP-POST, instead (--post-only)
    POST /sso/login      checks the password, answers the request with a
                         signed Response through an auto-submitting HTTP-POST
                         form to the SP's ACS
    GET  /slo/redirect   Single Logout, HTTP-Redirect (not with --post-only):
                         the SP's signed LogoutRequest (verified, answered
                         with a signed LogoutResponse back to the SP), or the
                         SP's LogoutResponse to ours (verified, shown)
    POST /slo/post       the same for HTTP-POST
    GET  /account?user=  the user's page at the IdP, with "Sign out of all
                         applications"
    POST /slo/initiate   IdP-initiated logout: a signed LogoutRequest to the
                         SP's Single Logout endpoint

Users are read from a JSON file on every login (name -> password, name_id,
attributes), so changing an attribute there is what an IdP administrator
changing a directory entry looks like to the SP.
"""

import argparse
import base64
import html
import json
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server
from urllib.parse import parse_qs

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, xmldsig
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
 body {{ font-family: system-ui, sans-serif; background: #1f2937; color: #111; margin: 0; }}
 main {{ max-width: 22rem; margin: 4rem auto; background: #fff; padding: 2rem; border-radius: 8px; }}
 h1 {{ font-size: 1.2rem; margin-top: 0; }}
 label {{ display: block; margin: .8rem 0 .2rem; }}
 input[type=text], input[type=password] {{ width: 100%; padding: .4rem; box-sizing: border-box; }}
 button {{ margin-top: 1.2rem; padding: .5rem 1rem; }}
 .error {{ color: #b91c1c; }}
 .muted {{ color: #6b7280; font-size: .85rem; }}
</style></head><body><main>{body}</main></body></html>"""


def auto_post(title, destination, field, message, relay_state):
    """The HTTP-POST binding: a page whose form posts the message (base64)
    and RelayState to `destination` by itself."""
    encoded = base64.b64encode(str(message).encode("utf-8")).decode("ascii")
    body = (
        f"<h1>{html.escape(title)}…</h1>"
        f'<form method="post" action="{html.escape(destination)}">'
        f'<input type="hidden" name="{field}" value="{encoded}">'
        f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">'
        "<noscript><button type=\"submit\">Continue</button></noscript></form>"
        "<script>document.forms[0].submit()</script>"
    )
    return PAGE.format(title=title, body=body)


class IdP:
    def __init__(self, name, base_url, key, cert, users_file, sp_metadata_url, post_only=False):
        self.name = name
        # The SSO endpoint: HTTP-Redirect, or (like several IdP products)
        # only HTTP-POST.
        self.sso_path = "/sso/post" if post_only else "/sso/redirect"
        self.sso_binding = BINDING_HTTP_POST if post_only else BINDING_HTTP_REDIRECT
        # Single Logout: HTTP-Redirect and HTTP-POST, or only HTTP-POST.
        self.slo_bindings = [BINDING_HTTP_POST] if post_only else [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST]
        self.base_url = base_url.rstrip("/")
        self.entity_id = self.base_url + "/metadata"
        self.key, self.cert = key, cert
        self.users_file = users_file
        self.sp_metadata_url = sp_metadata_url
        self._server = None
        self._logout_server = None
        self._lock = threading.Lock()

    def config(self, sp_metadata=None, signed_requests=False):
        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "service": {
                    "idp": {
                        "name": self.name,
                        "endpoints": {
                            "single_sign_on_service": [
                                (self.base_url + self.sso_path, self.sso_binding)
                            ],
                            "single_logout_service": [
                                (self.base_url + ("/slo/redirect" if b == BINDING_HTTP_REDIRECT else "/slo/post"), b)
                                for b in self.slo_bindings
                            ],
                        },
                        # The Single Logout side insists on signed requests.
                        "want_authn_requests_signed": signed_requests,
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                        "policy": {
                            "default": {
                                "lifetime": {"minutes": 5},
                                "attribute_restrictions": None,
                            }
                        },
                    }
                },
                "key_file": self.key,
                "cert_file": self.cert,
                "metadata": {"inline": [sp_metadata]} if sp_metadata else {},
                "xmlsec_binary": "/usr/bin/xmlsec1",
                "allow_unknown_attributes": True,
            }
        )
        return config

    def server(self, logout=False):
        # The SP's metadata is fetched on first use, so the IdP and the
        # application can start in either order. The logout server verifies
        # the SP's signature on every request it takes.
        with self._lock:
            if self._server is None:
                with urllib.request.urlopen(self.sp_metadata_url, timeout=10) as r:
                    sp_metadata = r.read().decode("utf-8")
                self._server = Server(config=self.config(sp_metadata))
                self._logout_server = Server(config=self.config(sp_metadata, signed_requests=True))
                self.sp_entity_id = next(iter(self._server.metadata.keys()))
            return self._logout_server if logout else self._server

    def metadata(self):
        xml = create_metadata_string(None, config=self.config(), sign=False)
        return xml if isinstance(xml, bytes) else xml.encode("utf-8")

    def users(self):
        with open(self.users_file, encoding="utf-8") as f:
            return json.load(f)

    # -- pages ---------------------------------------------------------------

    def login_form(self, saml_request, relay_state, error=None, username=""):
        request = self.server().parse_authn_request(saml_request, self.sso_binding)
        sp = html.escape(request.message.issuer.text)
        body = (
            f"<h1>Sign in to {html.escape(self.name)}</h1>"
            f'<p class="muted">Requested by <b>{sp}</b></p>'
            + (f'<p class="error">{html.escape(error)}</p>' if error else "")
            + '<form method="post" action="/sso/login">'
            f'<input type="hidden" name="SAMLRequest" value="{html.escape(saml_request)}">'
            f'<input type="hidden" name="RelayState" value="{html.escape(relay_state)}">'
            '<label for="username">Username</label>'
            f'<input type="text" id="username" name="username" value="{html.escape(username)}" autofocus>'
            '<label for="password">Password</label>'
            '<input type="password" id="password" name="password">'
            '<button type="submit">Sign in</button></form>'
        )
        return PAGE.format(title="Sign in", body=body)

    def answer(self, saml_request, relay_state, username, password):
        """The signed Response for a correct password, as an auto-submitting
        form; None for a wrong one."""
        user = self.users().get(username)
        if user is None or user["password"] != password:
            return None
        server = self.server()
        request = server.parse_authn_request(saml_request, self.sso_binding)
        args = server.response_args(request.message, [BINDING_HTTP_POST])
        response = server.create_authn_response(
            identity=user["attributes"],
            in_response_to=args["in_response_to"],
            destination=args["destination"],
            sp_entity_id=args["sp_entity_id"],
            userid=username,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=user["name_id"]),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
            sign_response=True,
            sign_assertion=True,
            sign_alg=xmldsig.SIG_RSA_SHA256,
            digest_alg=xmldsig.DIGEST_SHA256,
        )
        return auto_post("Signing you in", args["destination"], "SAMLResponse", response, relay_state)

    # -- Single Logout -------------------------------------------------------

    def sp_certificate(self):
        """The SP's signing certificate (base64 DER) from its metadata."""
        server = self.server()
        return server.metadata.certs(self.sp_entity_id, "spsso", "signing")[0][1]

    def send(self, message, binding, destination, relay_state, response):
        """A signed message in `binding`: (status, headers, body)."""
        server = self.server(logout=True)
        if binding == BINDING_HTTP_REDIRECT:
            info = server.apply_binding(binding, str(message), destination, relay_state,
                                        response=response, sign=True, sigalg=xmldsig.SIG_RSA_SHA256)
            return "302 Found", [("Location", dict(info["headers"])["Location"])], ""
        field = "SAMLResponse" if response else "SAMLRequest"
        return "200 OK", [], auto_post("Signing you out", destination, field, message, relay_state)

    def single_logout(self, binding, fields):
        """A message at the IdP's SLO endpoint: the SP's LogoutRequest is
        verified (its signature, against the SP metadata's certificate) and
        answered; the SP's LogoutResponse to ours is verified and shown."""
        server = self.server(logout=True)
        relay_state = fields.get("RelayState", "")
        if "SAMLRequest" in fields:
            signature = {}
            if binding == BINDING_HTTP_REDIRECT:
                signature = {"relay_state": fields.get("RelayState"), "sigalg": fields.get("SigAlg"),
                             "signature": fields.get("Signature")}
            request = server.parse_logout_request(fields["SAMLRequest"], binding, **signature)
            if request is None:
                raise ValueError("the LogoutRequest does not verify")
            response = server.create_logout_response(
                request.message, bindings=[binding], sign=binding == BINDING_HTTP_POST,
                sign_alg=xmldsig.SIG_RSA_SHA256, digest_alg=xmldsig.DIGEST_SHA256)
            destination = server.response_args(request.message, [binding])["destination"]
            print(f"idp: logged out {request.message.name_id.text} at the SP's request", flush=True)
            return self.send(response, binding, destination, relay_state, True)
        if "SAMLResponse" not in fields:
            raise ValueError("no SAMLRequest or SAMLResponse")
        if binding == BINDING_HTTP_REDIRECT:
            from saml2.sigver import verify_redirect_signature

            if not verify_redirect_signature(fields, server.sec.sec_backend, cert=self.sp_certificate()):
                raise ValueError("the LogoutResponse's signature does not verify")
        response = server.parse_logout_request_response(fields["SAMLResponse"], binding)
        if response is None:
            raise ValueError("the LogoutResponse does not verify")
        status = response.response.status.status_code.value.rpartition(":")[2]
        body = (f'<h1>Signed out</h1><p id="slo-status">{html.escape(status)}</p>'
                f"<p>You are signed out of {html.escape(self.name)} and its applications.</p>")
        return "200 OK", [], PAGE.format(title="Signed out", body=body)

    def account_page(self, username):
        if username not in self.users():
            return "404 Not Found", [], PAGE.format(title="Not found", body="<p>No such user.</p>")
        body = (
            f"<h1>{html.escape(self.name)}: {html.escape(username)}</h1>"
            '<form method="post" action="/slo/initiate">'
            f'<input type="hidden" name="user" value="{html.escape(username)}">'
            '<button type="submit" id="logout-everywhere">Sign out of all applications</button></form>'
        )
        return "200 OK", [], PAGE.format(title="Account", body=body)

    def initiate_logout(self, username):
        """IdP-initiated logout: a LogoutRequest for the user's NameID, in
        the first SLO binding the SP offers that this IdP has too."""
        server = self.server(logout=True)
        user = self.users()[username]
        for binding in self.slo_bindings:
            endpoints = server.metadata.single_logout_service(self.sp_entity_id, binding, "spsso")
            if endpoints:
                destination = endpoints[0]["location"]
                break
        else:
            raise ValueError("the SP has no Single Logout endpoint this IdP can use")
        _, request = server.create_logout_request(
            destination, self.sp_entity_id,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=user["name_id"]),
            sign=binding == BINDING_HTTP_POST, sign_alg=xmldsig.SIG_RSA_SHA256,
            digest_alg=xmldsig.DIGEST_SHA256)
        return self.send(request, binding, destination, "", False)

    # -- WSGI ----------------------------------------------------------------

    def __call__(self, environ, start_response):
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]

        def reply(status, body, content_type="text/html; charset=utf-8"):
            data = body if isinstance(body, bytes) else body.encode("utf-8")
            start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
            return [data]

        def form():
            size = int(environ.get("CONTENT_LENGTH") or 0)
            return {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(size).decode("utf-8")).items()}

        def sent(status_headers_body):
            status, headers, body = status_headers_body
            data = body.encode("utf-8")
            if not any(h == "Location" for h, _ in headers):
                headers = headers + [("Content-Type", "text/html; charset=utf-8")]
            start_response(status, headers + [("Content-Length", str(len(data)))])
            return [data]

        try:
            if path == "/slo/redirect" and method == "GET" and BINDING_HTTP_REDIRECT in self.slo_bindings:
                query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
                return sent(self.single_logout(BINDING_HTTP_REDIRECT, query))
            if path == "/slo/post" and method == "POST":
                return sent(self.single_logout(BINDING_HTTP_POST, form()))
            if path == "/account" and method == "GET":
                return sent(self.account_page(parse_qs(environ.get("QUERY_STRING", "")).get("user", [""])[0]))
            if path == "/slo/initiate" and method == "POST":
                return sent(self.initiate_logout(form().get("user", "")))
            if method == "GET" and path == "/metadata":
                return reply("200 OK", self.metadata(), "application/samlmetadata+xml")
            if path == self.sso_path and method == ("POST" if self.sso_path == "/sso/post" else "GET"):
                if method == "POST":
                    size = int(environ.get("CONTENT_LENGTH") or 0)
                    q = parse_qs(environ["wsgi.input"].read(size).decode("utf-8"))
                else:
                    q = parse_qs(environ.get("QUERY_STRING", ""))
                if "SAMLRequest" not in q:
                    return reply("400 Bad Request", PAGE.format(title="Error", body="<p>No SAMLRequest.</p>"))
                return reply("200 OK", self.login_form(q["SAMLRequest"][0], q.get("RelayState", [""])[0]))
            if method == "POST" and path == "/sso/login":
                size = int(environ.get("CONTENT_LENGTH") or 0)
                form = parse_qs(environ["wsgi.input"].read(size).decode("utf-8"))
                field = lambda name: form.get(name, [""])[0]  # noqa: E731
                page = self.answer(field("SAMLRequest"), field("RelayState"), field("username"), field("password"))
                if page is None:
                    page = self.login_form(field("SAMLRequest"), field("RelayState"),
                                           "Wrong username or password.", field("username"))
                    return reply("401 Unauthorized", page)
                return reply("200 OK", page)
            return reply("404 Not Found", PAGE.format(title="Not found", body="<p>Not found.</p>"))
        except Exception as e:  # a malformed request is the browser's problem, not a crash
            return reply("400 Bad Request",
                         PAGE.format(title="Error", body=f'<p class="error">{html.escape(str(e))}</p>'))


class QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        print(f"idp: {self.command} {self.path.split('?')[0]} {code}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", default="Example Corp", help="the organisation shown on the login form")
    p.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8001")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--listen", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--users", required=True, help="users JSON file, reread on every login")
    p.add_argument("--sp-metadata-url", required=True)
    p.add_argument("--post-only", action="store_true", help="offer only an HTTP-POST SSO endpoint")
    a = p.parse_args()
    idp = IdP(a.name, a.base_url, a.key, a.cert, a.users, a.sp_metadata_url, a.post_only)
    with make_server(a.listen, a.port, idp, handler_class=QuietHandler) as httpd:
        print(f"idp: listening on {a.base_url}", flush=True)
        httpd.serve_forever()


if __name__ == "__main__":
    main()
