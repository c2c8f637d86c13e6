"""Validates SAML metadata (stdin) against the OASIS metadata schema that
pysaml2 ships (saml2/data/schemas). Exit 0 and "valid", or exit 1 and why."""

import sys
from importlib.resources import files

from saml2.xml.schema import _create_xml_schema_validator

import saml2.data.schemas

schema = str(files(saml2.data.schemas).joinpath("saml-schema-metadata-2.0.xsd"))
try:
    _create_xml_schema_validator(schema).validate(sys.stdin.read())
except Exception as e:  # noqa: BLE001 - report any validation failure
    print(f"invalid: {e}")
    sys.exit(1)
print("valid")
