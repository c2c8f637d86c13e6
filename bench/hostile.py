"""Builds the hostile responses of scripts/bench-hostile from one genuine
signed response (base64 on stdin). Each shape aims at one cost a response can
cause before its signature has verified; every one stays under the default
max_response_bytes (1 MB of base64).

writes TSV lines to stdout: shape name, base64 response
"""

import base64
import sys

LIMIT = 1024 * 1024


def shapes(xml):
    """(name, document) pairs; the Advice element carries the load, inside
    the signed Assertion, so all of it is canonicalized before the digest
    fails."""
    inclusive = xml.replace("http://www.w3.org/2001/10/xml-exc-c14n#",
                            "http://www.w3.org/2006/12/xml-c14n11")

    def advice(doc, filler):
        pos = doc.rfind("<", 0, doc.index("Subject"))
        return (doc[:pos] + '<saml:Advice xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">'
                + filler + "</saml:Advice>" + doc[pos:])

    def namespaces(prefix, n):
        return "".join(f' xmlns:{prefix}{i}="urn:bomb:{i}"' for i in range(n))

    attrs = "".join(f' a{i}="v"' for i in range(32))
    # Five plus five declarations and those of the response itself: the
    # limit of 16 namespaces in scope.
    scoped = f"<x{namespaces('p', 5)}><x{namespaces('q', 5)}>" + "<x>" * 10

    def deep(leaves):
        return "<x>" * 12 + leaves + "</x>" * 12

    yield "genuine", xml
    # Exclusive canonicalization (every mainstream IdP), up to the limits.
    yield "exc-ns-decls-2000", advice(xml, f'<p0:x{namespaces("p", 8)} a="1"/>' * 250)
    yield "exc-attributes-4000", advice(xml, f"<x{attrs}/>" * 125)
    yield "exc-elements-4900", advice(xml, "<x/>" * 4900)
    yield "exc-depth-chains", advice(xml, ("<x>" * 12 + "</x>" * 12) * 400)
    yield "exc-deep-siblings", advice(xml, deep("<y/>" * 4800))
    yield "exc-deep-siblings-ns", advice(xml, scoped + "<y/>" * 4800 + "</x>" * 12)
    yield "exc-deep-siblings-attributes", advice(xml, deep('<y a="1"/>' * 4000 + "<y/>" * 800))
    yield "exc-text-1mb", advice(xml, "<x>" + "y&amp;" * 120000 + "</x>")
    # Inclusive canonicalization 1.1: admitted for at most 1,000 nodes.
    yield "c14n11-deep-siblings-ns", advice(inclusive, scoped + "<y/>" * 920 + "</x>" * 12)
    yield "c14n11-deep-siblings-attributes", advice(inclusive, deep('<y a="1"/>' * 930))
    yield "c14n11-text-1mb", advice(inclusive, "<x>" + "y&amp;" * 120000 + "</x>")
    # Refused by the structural pre-check (shape.rs), for comparison.
    yield "refused-c14n11-elements-4900", advice(inclusive, "<x/>" * 4900)
    yield "refused-attrs-60000", advice(xml, "<x" + "".join(f' a{i}="v"' for i in range(60000)) + "/>")
    yield "refused-ns-bomb-nested", advice(xml, f"<x{namespaces('p', 16)}>" * 30 + "</x>" * 30)
    yield "refused-elements-100000", advice(xml, "<x/>" * 100000)
    yield "refused-attributes-70000", advice(inclusive, f"<x{attrs}/>" * 2300)


def main():
    xml = base64.b64decode(sys.stdin.read()).decode("utf-8")
    for name, doc in shapes(xml):
        encoded = base64.b64encode(doc.encode("utf-8")).decode("ascii")
        if len(encoded) > LIMIT:
            sys.exit(f"{name}: {len(encoded)} bytes of base64, over the 1 MB default")
        print(f"{name}\t{encoded}")


if __name__ == "__main__":
    main()
