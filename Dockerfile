# The chat service: Socket.IO relay and HTTP API (python -m workers relay).
# Migrations are not applied from here: push them with the Supabase CLI (docs/operations.md).
# BASE: any image with Python 3.11 and pip (the default), or a plain Debian 12 (scripts/
# container-test builds on one made with debootstrap: no registry is reachable there).
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=5001

# A Debian base has no Python yet; the python image has it (and this does nothing).
RUN if ! python3 -m venv --help >/dev/null 2>&1; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv \
    && useradd --create-home --uid 10001 chat \
    && mkdir -p /data && chown chat /data
ENV PATH=/opt/venv/bin:$PATH
# Local uploads (STORAGE_BACKEND=local) and uploads in progress (either backend).
ENV DATA_DIR=/data
VOLUME /data

WORKDIR /app
# The locked dependencies first (each file checked against its hash), then the service.
# A build may mount the host's CA bundle at /run/host-ca.crt (scripts/container-test);
# nothing of it stays in the image.
COPY requirements.lock ./
RUN if [ -f /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi \
    && pip install --no-compile --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY workers ./workers
RUN if [ -f /run/host-ca.crt ]; then export PIP_CERT=/run/host-ca.crt; fi \
    && pip install --no-compile --no-deps .

USER chat
EXPOSE 5001
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"5001\")}/health', timeout=4)"
CMD ["python", "-m", "workers", "relay"]
