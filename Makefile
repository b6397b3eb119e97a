# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the tests and the demo need (installed when root and missing);
# chromium is the browser tests' headless Chromium (never a downloaded browser).
APT_PACKAGES := libcairo2 fonts-dejavu-core fonts-noto-core fonts-noto-cjk chromium poppler-utils
# Apache Kafka runs on a JRE (17 or newer); Maven fetches its jars from Maven Central.
JAVA_PACKAGES := default-jre-headless maven
INSTALLED := $(VENV)/.installed

.PHONY: test lint node demo apt java kafka clean

test: apt kafka lint node
	$(BIN)/pytest

# The npm packages of the interop and browser tests (Digital Bazaar's and the DCC's
# verifiers, the wallet simulator, playwright-core, axe-core), as their lockfiles pin
# them; Node.js and npm from Debian when missing.
node:
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error

# ruff and mypy as configured in pyproject.toml: mypy is strict on the pure core
# (render, credentials, notify, pages, i18n, jsonlimits, roster, errors), which is
# clean; the rest of certflow is not yet, so `test` does not depend on `lint` until it is.
# Both always run, so one pass shows every finding; it fails if either does.
lint: $(INSTALLED)
	@status=0; \
	$(BIN)/ruff check certflow tests || status=1; \
	$(BIN)/mypy certflow || status=1; \
	exit $$status

demo: apt kafka
	$(BIN)/python demo/run.py

# Apache Kafka's jars, fetched by Maven into ~/.cache/certflow/kafka-<version>/libs
# (certflow/kafka_dist/pom.xml); `certflow broker` fetches them on first use too.
kafka: java $(INSTALLED)
	$(BIN)/python -c 'from certflow.kafka_dist import fetch_kafka; print(fetch_kafka())'

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing $$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "missing Debian packages: $$missing (install them as root)"; \
		fi; \
	fi

# A JRE and Maven unless both are there already (any JRE 17+ on PATH will do).
java:
	@if command -v java >/dev/null && command -v mvn >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(JAVA_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(JAVA_PACKAGES) >/dev/null; \
	else \
		echo "missing java or mvn: install $(JAVA_PACKAGES) as root"; exit 1; \
	fi

clean:
	rm -rf $(VENV) .certflow out .pytest_cache .mypy_cache .ruff_cache
