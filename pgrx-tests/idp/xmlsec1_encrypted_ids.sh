#!/usr/bin/env bash
# Mints a signed response whose NameID is an EncryptedID and whose mail
# attribute is an EncryptedAttribute, with the xmlsec1 tool (pysaml2 has no
# switch for these). Prints the base64 SAMLResponse.
# usage: xmlsec1_encrypted_ids.sh SP_CERT IDP_KEY IDP SP ACS EMAIL
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sp_cert=$1 idp_key=$2 idp=$3 sp=$4 acs=$5 email=$6
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# The demo template, with the NameID and the mail Attribute wrapped for encryption.
base64 -d <<<"$("$here/../../demo/mint" "$idp" "$sp" "$acs" "$email" "$idp_key")" >"$tmp/signed.xml"
python3 - "$tmp/signed.xml" "$tmp/plain.xml" <<'PY'
import re, sys
xml = open(sys.argv[1]).read()
xml = re.sub(r'<ds:Signature.*?</ds:Signature>', '', xml, flags=re.S)          # re-signed below
xml = re.sub(r'(<saml:NameID[^>]*>[^<]*</saml:NameID>)', r'<saml:EncryptedID>\1</saml:EncryptedID>', xml)
xml = re.sub(r'(<saml:Attribute Name="mail">.*?</saml:Attribute>)', r'<saml:EncryptedAttribute>\1</saml:EncryptedAttribute>', xml, flags=re.S)
open(sys.argv[2], 'w').write(xml)
PY
cat >"$tmp/enc.xml" <<'XML'
<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>
XML
xmlsec1 --encrypt --pubkey-cert-pem "$sp_cert" --session-key aes-128 --xml-data "$tmp/plain.xml" \
  --node-xpath "//*[local-name()='EncryptedID']/*[local-name()='NameID']" --output "$tmp/e1.xml" "$tmp/enc.xml" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
xmlsec1 --encrypt --pubkey-cert-pem "$sp_cert" --session-key aes-128 --xml-data "$tmp/e1.xml" \
  --node-xpath "//*[local-name()='EncryptedAttribute']/*[local-name()='Attribute']" --output "$tmp/e2.xml" "$tmp/enc.xml" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
# Re-sign the Assertion (a fresh enveloped signature template after its Issuer).
python3 - "$tmp/e2.xml" <<'PY'
import re, sys
xml = open(sys.argv[1]).read()
aid = re.search(r'<saml:Assertion ID="([^"]+)"', xml).group(1)
sig = ('<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
       '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
       '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
       f'<ds:Reference URI="#{aid}"><ds:Transforms>'
       '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
       '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>'
       '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference>'
       '</ds:SignedInfo><ds:SignatureValue/></ds:Signature>')
i = xml.index('</saml:Issuer>', xml.index('<saml:Assertion')) + len('</saml:Issuer>')
open(sys.argv[1], 'w').write(xml[:i] + sig + xml[i:])
PY
xmlsec1 --sign --privkey-pem "$idp_key" --id-attr:ID urn:oasis:names:tc:SAML:2.0:assertion:Assertion \
  --output "$tmp/final.xml" "$tmp/e2.xml" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
base64 -w0 "$tmp/final.xml"
