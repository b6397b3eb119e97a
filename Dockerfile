# certflow worker image: `docker build -t certflow .` then `docker run certflow`
# (the entrypoint is `certflow worker`; configure it with CERTFLOW_* variables).
# Signing keys are never baked in and never made up: give every worker the same ones,
# CERTFLOW_SIGNING_KEYS from a Secret, or CERTFLOW_SIGNING_KEYS_FILE naming a mounted
# file (`certflow keys generate --file keys.json` makes one). Without, the worker
# exits at once saying so.

# --- build: wheels for certflow and everything it needs --------------------------
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY certflow ./certflow
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- run: the wheels, fonts and cairo; no compilers, no source tree ----------------
FROM python:3.11-slim
# Fonts for the scripts learners' names are written in: Noto covers Devanagari,
# Tamil, Bengali, Telugu, Gujarati, Arabic and Urdu (fonts-noto-core) and CJK
# (fonts-noto-cjk); cairo renders the shaped SVG to PDF/PNG.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-core fonts-noto-cjk libcairo2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels certflow && rm -rf /wheels

RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/certflow certflow
USER certflow
WORKDIR /var/lib/certflow
ENV CERTFLOW_WEB_BIND=0.0.0.0 \
    CERTFLOW_DATA_DIR=/var/lib/certflow/data \
    CERTFLOW_STORE=rocksdb:// \
    PYTHONUNBUFFERED=1
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CERTFLOW_WEB_PORT', '6066') + '/health', timeout=2)"
ENTRYPOINT ["certflow", "worker"]
