"""Mints signed SAML responses for the benchmarks, fast: the demo template
(demo/response-template.xml), one Assertion signed with RSA-SHA256 by the demo
IdP key through python-xmlsec (the same libxmlsec1 as xmlsec1).

usage: mint.py COUNT USERS PADDING_BYTES
writes TSV lines to stdout: n, base64 response, subject, email, attributes
(the JSON saml_jit stores in users.attributes, for the floor baseline)
Response n is for user (n % USERS): USERS = COUNT gives first logins only.
"""

import base64
import datetime
import json
import os
import sys
import uuid

import xmlsec
from lxml import etree

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NS_ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_DSIG = "http://www.w3.org/2000/09/xmldsig#"

IDP = "https://idp.bench.example/"
SP = "https://app.bench.example/sp"
ACS = "https://app.bench.example/acs"


def main():
    count, users, padding = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    template = open(os.path.join(ROOT, "demo", "response-template.xml")).read()
    now = datetime.datetime.now(datetime.timezone.utc)
    fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
    common = (
        template.replace("@NOW@", fmt(now))
        .replace("@LATER@", fmt(now + datetime.timedelta(hours=12)))
        .replace("@SESSION_END@", fmt(now + datetime.timedelta(hours=12)))
        .replace("@IDP@", IDP)
        .replace("@SP@", SP)
        .replace("@ACS@", ACS)
    )
    if padding:
        # Real responses grow with group lists: pad with a long memberOf.
        values = "".join(
            f"<saml:AttributeValue>CN=group-{i:05d},OU=Groups,DC=corp,DC=example</saml:AttributeValue>"
            for i in range(padding // 70)
        )
        common = common.replace(
            "</saml:AttributeStatement>",
            f'<saml:Attribute Name="memberOf">{values}</saml:Attribute></saml:AttributeStatement>',
        )
    key = xmlsec.Key.from_file(os.path.join(ROOT, "pgrx-tests", "fixtures", "demo-idp.key"),
                               xmlsec.constants.KeyDataFormatPem)
    out = sys.stdout
    for n in range(1, count + 1):
        user = f"user{n % users:07d}"
        email = f"{user}@bench.example"
        xml = common.replace("@ID@", uuid.uuid4().hex).replace("@EMAIL@", email)
        root = etree.fromstring(xml.encode())
        assertion = root.find(f"{{{NS_ASSERTION}}}Assertion")
        xmlsec.tree.add_ids(assertion, ["ID"])
        ctx = xmlsec.SignatureContext()
        ctx.key = key
        ctx.sign(assertion.find(f"{{{NS_DSIG}}}Signature"))
        b64 = base64.b64encode(etree.tostring(root)).decode()
        attributes = {
            a.get("Name"): [v.text or "" for v in a]
            for a in assertion.iter(f"{{{NS_ASSERTION}}}Attribute")
        }
        out.write(f"{n}\t{b64}\t{email}\t{email}\t{json.dumps(attributes).replace(chr(92), chr(92) * 2)}\n")


if __name__ == "__main__":
    main()
