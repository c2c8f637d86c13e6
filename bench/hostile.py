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
    inclusive = xml.replace("http://www.w3.org/2001/10/xml-exc-c14n#",
                            "http://www.w3.org/2006/12/xml-c14n11")
    at = xml.index("<", xml.index("Subject") - 8)
    at = xml.rfind("<", 0, xml.index("Subject"))
    at_incl = inclusive.rfind("<", 0, inclusive.index("Subject"))

    def advice(doc, pos, filler):
        return (doc[:pos] + '<saml:Advice xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">'
                + filler + "</saml:Advice>" + doc[pos:])

    decls = "".join(f' xmlns:p{i}="urn:bomb:{i}"' for i in range(16))
    yield "genuine", xml
    yield "ns16-siblings-c14n11", advice(inclusive, at_incl, f'<p0:x{decls} a="1" b="2"/>' * 2000)
    yield "ns16-siblings-exc", advice(xml, at, f'<p0:x{decls} a="1" b="2"/>' * 2000)
    attrs = "".join(f' a{i}="v"' for i in range(32))
    yield "attrs32-siblings-c14n11", advice(inclusive, at_incl, f"<x{attrs}/>" * 2300)
    yield "elements-9990-c14n11", advice(inclusive, at_incl, "<x/>" * 9990)
    chain = "<x>" * 24 + "</x>" * 24
    yield "depth-chains-c14n11", advice(inclusive, at_incl, chain * 400)
    # Refused by the structural pre-check (shape.rs), for comparison.
    yield "attrs-60000", advice(xml, at, "<x" + "".join(f' a{i}="v"' for i in range(60000)) + "/>")
    yield "ns-bomb-nested", advice(xml, at, f"<x{decls}>" * 30 + "</x>" * 30)
    yield "elements-100000", advice(xml, at, "<x/>" * 100000)


def main():
    xml = base64.b64decode(sys.stdin.read()).decode("utf-8")
    for name, doc in shapes(xml):
        encoded = base64.b64encode(doc.encode("utf-8")).decode("ascii")
        if len(encoded) > LIMIT:
            sys.exit(f"{name}: {len(encoded)} bytes of base64, over the 1 MB default")
        print(f"{name}\t{encoded}")


if __name__ == "__main__":
    main()
