-- Runs once when the container's database is first created.
CREATE EXTENSION IF NOT EXISTS saml_jit;
