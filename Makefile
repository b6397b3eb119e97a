# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the tests and the demo need (installed when root and missing);
# chromium is the browser tests' headless Chromium (never a downloaded browser).
APT_PACKAGES := libcairo2 fonts-dejavu-core fonts-noto-core fonts-noto-cjk chromium poppler-utils
INSTALLED := $(VENV)/.installed

.PHONY: test demo apt clean

test: apt $(INSTALLED)
	$(BIN)/pytest

demo: apt $(INSTALLED)
	$(BIN)/python demo/run.py

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

clean:
	rm -rf $(VENV) .certflow out .pytest_cache
