# The chat service: Socket.IO relay and HTTP API (python -m workers relay).
# Migrations are not applied from here: push them with the Supabase CLI (see README).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=5001

RUN useradd --create-home --uid 10001 chat \
    && mkdir -p /data && chown chat /data
# Local uploads (STORAGE_BACKEND=local) and uploads in progress (either backend).
ENV DATA_DIR=/data
VOLUME /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY workers ./workers
RUN pip install .

USER chat
EXPOSE 5001
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"5001\")}/health', timeout=4)"
CMD ["python", "-m", "workers", "relay"]
