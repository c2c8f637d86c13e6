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
"""

import base64
import json
import sys

from saml2 import BINDING_HTTP_POST, xmldsig
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
                            "single_sign_on_service": [(spec["idp"] + "sso", BINDING_HTTP_POST)]
                        },
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


if __name__ == "__main__":
    specs = json.load(sys.stdin)
    json.dump([mint(s) for s in specs], sys.stdout)
