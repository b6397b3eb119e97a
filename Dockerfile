# certflow worker image: `docker build -t certflow .` then `docker run certflow`
# (the entrypoint is `certflow worker`; configure it with CERTFLOW_* variables).
FROM python:3.11-slim

# Fonts for the scripts learners' names are written in: Noto covers Devanagari,
# Tamil, Bengali, Telugu, Gujarati, Arabic and Urdu (fonts-noto-core) and CJK;
# cairo renders SVG certificates to PDF/PNG.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-core fonts-noto-cjk libcairo2 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY certflow ./certflow
RUN pip install --no-cache-dir . && rm -rf /src

RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/certflow certflow
USER certflow
WORKDIR /var/lib/certflow
ENV CERTFLOW_WEB_BIND=0.0.0.0 \
    CERTFLOW_DATA_DIR=/var/lib/certflow/data \
    PYTHONUNBUFFERED=1
EXPOSE 6066
ENTRYPOINT ["certflow", "worker"]
