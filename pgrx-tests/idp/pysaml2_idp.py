"""A real, independent SAML IdP for the tests: pysaml2 (which signs with the
xmlsec1 command-line tool) mints Responses the way a deployed IdP does.

stdin:  a JSON list of specs, one per response to mint
stdout: a JSON list of base64 SAMLResponse values, in the same order

spec keys: idp, sp, acs, user, key, cert, attributes ({name: [values]}),
sign_response, sign_assertion (bools), sign_alg (rsa-sha1|rsa-sha256|rsa-sha512),
digest_alg (sha1|sha256|sha512), in_response_to (str or null),
lifetime_minutes (int, default 5), answer_url (an HTTP-Redirect URL carrying
an AuthnRequest: pysaml2 parses and checks it, and the response answers it),
answer_post (the SAMLRequest form value of the HTTP-POST binding: the same,
its enveloped signature verified with the SP metadata's certificate),
sp_metadata (the SP's metadata XML, used instead of a generated one), encrypt_for (path of the SP certificate
PEM: encrypt the assertion for it; absent = plain)

Single Logout (a spec with "op"; the answer is a JSON object, see each
function): "metadata" (this IdP's metadata, with its SingleLogoutService
endpoints), "logout_request" (an IdP-initiated LogoutRequest to the SP),
"answer_logout" (parse and verify the SP's LogoutRequest, answer it),
"check_logout_response" (parse and verify the SP's LogoutResponse).
"""

import base64
import json
import sys

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, xmldsig
from saml2.config import IdPConfig
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server

SIGN_ALGS = {
    "rsa-sha1": xmldsig.SIG_RSA_SHA1,
    "rsa-sha256": xmldsig.SIG_RSA_SHA256,
    "rsa-sha512": xmldsig.SIG_RSA_SHA512,
}
DIGEST_ALGS = {
    "sha1": xmldsig.DIGEST_SHA1,
    "sha256": xmldsig.DIGEST_SHA256,
    "sha512": xmldsig.DIGEST_SHA512,
}

_servers = {}


def server_for(spec):
    key = (spec["idp"], spec["sp"], spec["acs"], spec["key"], spec.get("lifetime_minutes", 5),
           spec.get("sp_metadata"))
    if key not in _servers:
        sp_metadata = spec.get("sp_metadata") or (
            '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            f'entityID="{spec["sp"]}"><md:SPSSODescriptor '
            'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
            '<md:AssertionConsumerService '
            'Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
            f'Location="{spec["acs"]}" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>'
        )
        config = IdPConfig()
        config.load(
            {
                "entityid": spec["idp"],
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [(spec["idp"] + "sso", BINDING_HTTP_POST)],
                            "single_logout_service": [
                                (spec["idp"] + "slo/redirect", BINDING_HTTP_REDIRECT),
                                (spec["idp"] + "slo/post", BINDING_HTTP_POST),
                            ],
                        },
                        # The SP's messages (its LogoutRequest) must be signed.
                        "want_authn_requests_signed": spec.get("want_signed", False),
                        "policy": {
                            "default": {
                                "lifetime": {"minutes": spec.get("lifetime_minutes", 5)},
                                "attribute_restrictions": None,
                            }
                        },
                    }
                },
                "key_file": spec["key"],
                "cert_file": spec["cert"],
                "metadata": {"inline": [sp_metadata]},
                "xmlsec_binary": "/usr/bin/xmlsec1",
                "allow_unknown_attributes": True,
            }
        )
        _servers[key] = Server(config=config)
    return _servers[key]


def encryption(spec):
    if not spec.get("encrypt_for"):
        return {}
    with open(spec["encrypt_for"]) as f:
        pem = f.read()
    return {"encrypt_assertion": True, "encrypt_cert_assertion": pem}


def answered_request(server, url):
    """Parses the AuthnRequest of an HTTP-Redirect URL the way the IdP's SSO
    endpoint would; returns its ID (pysaml2 raises on a malformed request)."""
    from urllib.parse import parse_qs, urlparse

    from saml2 import BINDING_HTTP_REDIRECT

    query = parse_qs(urlparse(url).query)
    request = server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
    return request.message.id


def answered_post_request(server, saml_request):
    """Parses the AuthnRequest of an HTTP-POST form value; pysaml2 verifies
    an enveloped signature against the SP's metadata and raises on a bad one."""
    request = server.parse_authn_request(saml_request, BINDING_HTTP_POST)
    return request.message.id


def mint(spec):
    server = server_for(spec)
    in_response_to = spec.get("in_response_to")
    if spec.get("answer_url"):
        in_response_to = answered_request(server, spec["answer_url"])
    if spec.get("answer_post"):
        in_response_to = answered_post_request(server, spec["answer_post"])
    response = server.create_authn_response(
        identity=spec.get("attributes", {}),
        in_response_to=in_response_to,
        destination=spec["acs"],
        sp_entity_id=spec["sp"],
        name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=spec["user"]),
        sign_response=spec.get("sign_response", False),
        sign_assertion=spec.get("sign_assertion", True),
        sign_alg=SIGN_ALGS[spec.get("sign_alg", "rsa-sha256")],
        digest_alg=DIGEST_ALGS[spec.get("digest_alg", "sha256")],
        authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
        session_not_on_or_after=spec.get("session_not_on_or_after"),
        **encryption(spec),
    )
    return base64.b64encode(str(response).encode("utf-8")).decode("ascii")


BINDINGS = {"redirect": BINDING_HTTP_REDIRECT, "post": BINDING_HTTP_POST}


def metadata(spec):
    from saml2.metadata import entity_descriptor

    return {"metadata": str(entity_descriptor(server_for(spec).config))}


def query_of(url):
    from urllib.parse import parse_qsl, urlparse

    return dict(parse_qsl(urlparse(url).query, keep_blank_values=True))


def verify_query_signature(server, query, sp_cert):
    """The HTTP-Redirect binding's detached signature, checked the way
    pysaml2 checks it, with the SP's certificate; raises when it fails."""
    from saml2.sigver import verify_redirect_signature

    with open(sp_cert) as f:
        cert = "".join(line for line in f.read().splitlines() if "-----" not in line)
    if "Signature" not in query or not verify_redirect_signature(query, server.sec.sec_backend, cert=cert):
        raise SystemExit("the SP's query string signature does not verify")


def sent(server, binding, message, destination, relay_state, response, sign_alg):
    """A message in a front-channel binding: the Redirect URL, or the POST
    form value (the enveloped signature is already in `message`)."""
    if binding == "redirect":
        info = server.apply_binding(
            BINDING_HTTP_REDIRECT, str(message), destination, relay_state,
            response=response, sign=True, sigalg=sign_alg,
        )
        return {"url": dict(info["headers"])["Location"]}
    return {"value": base64.b64encode(str(message).encode("utf-8")).decode("ascii")}


def logout_request(spec):
    """The IdP logs the user out everywhere: a LogoutRequest to the SP's
    SLO endpoint (spec "slo"), signed (unless "sign" is false)."""
    from saml2.samlp import SessionIndex

    server = server_for(spec)
    binding = spec.get("binding", "redirect")
    sign = spec.get("sign", True)
    sign_alg = SIGN_ALGS[spec.get("sign_alg", "rsa-sha256")]
    request_id, request = server.create_logout_request(
        spec["slo"], spec["sp"],
        name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=spec["user"]),
        session_indexes=[SessionIndex(text=i) for i in spec.get("session_indexes", [])],
        sign=sign and binding == "post", sign_alg=sign_alg,
        digest_alg=DIGEST_ALGS[spec.get("digest_alg", "sha256")],
        expire=spec.get("not_on_or_after"),
    )
    if binding == "redirect" and not sign:
        info = server.apply_binding(BINDING_HTTP_REDIRECT, str(request), spec["slo"],
                                    spec.get("relay_state", ""), sign=False)
        return {"id": request_id, "url": dict(info["headers"])["Location"]}
    out = sent(server, binding, request, spec["slo"], spec.get("relay_state", ""), False, sign_alg)
    out["id"] = request_id
    return out


def answer_logout(spec):
    """The IdP's SLO endpoint receives the SP's LogoutRequest ("url" of an
    HTTP-Redirect, or "value" of an HTTP-POST form), verifies its signature
    with the SP certificate ("sp_cert"), and answers with a signed
    LogoutResponse in the same binding."""
    server = server_for({**spec, "want_signed": True})
    if spec.get("url"):
        binding, query = "redirect", query_of(spec["url"])
        verify_query_signature(server, query, spec["sp_cert"])
        value, relay_state = query["SAMLRequest"], query.get("RelayState", "")
        signature = {"relay_state": query.get("RelayState"), "sigalg": query.get("SigAlg"),
                     "signature": query.get("Signature")}
    else:
        binding, value, relay_state = "post", spec["value"], spec.get("relay_state", "")
        signature = {}
    request = server.parse_logout_request(value, BINDINGS[binding], **signature)
    if request is None:
        raise SystemExit("pysaml2 refused the LogoutRequest")
    message = request.message
    sign_alg = SIGN_ALGS["rsa-sha256"]
    response = server.create_logout_response(
        message, bindings=[BINDINGS[binding]], sign=binding == "post", sign_alg=sign_alg,
        digest_alg=DIGEST_ALGS["sha256"],
    )
    destination = server.response_args(message, [BINDINGS[binding]])["destination"]
    out = sent(server, binding, response, destination, relay_state, True, sign_alg)
    out.update({
        "request_id": message.id,
        "name_id": message.name_id.text,
        "name_id_format": message.name_id.format,
        "session_indexes": [i.text for i in message.session_index],
        "destination": message.destination,
        "issuer": message.issuer.text,
    })
    return out


def check_logout_response(spec):
    """The IdP's SLO endpoint receives the SP's LogoutResponse and checks it
    (signature with the SP certificate, issuer, destination)."""
    server = server_for({**spec, "want_signed": True})
    if spec.get("url"):
        binding, query = "redirect", query_of(spec["url"])
        verify_query_signature(server, query, spec["sp_cert"])
        value = query["SAMLResponse"]
    else:
        binding, value = "post", spec["value"]
    response = server.parse_logout_request_response(value, BINDINGS[binding])
    if response is None:
        raise SystemExit("pysaml2 refused the LogoutResponse")
    message = response.response
    return {
        "in_response_to": message.in_response_to,
        "status": message.status.status_code.value,
        "issuer": message.issuer.text,
        "destination": message.destination,
        "signed": message.signature is not None,
    }


OPS = {
    "mint": mint,
    "metadata": metadata,
    "logout_request": logout_request,
    "answer_logout": answer_logout,
    "check_logout_response": check_logout_response,
}

if __name__ == "__main__":
    specs = json.load(sys.stdin)
    json.dump([OPS[s.get("op", "mint")](s) for s in specs], sys.stdout)
