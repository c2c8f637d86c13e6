# The example application and its IdP (examples/), one image for both plus
# the one-shot setup job. Same packages as examples/requirements.txt, which
# scripts/e2e installs and tests in CI.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
        xmlsec1 openssl curl postgresql-client \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /examples
COPY examples/requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY examples/ .
