# The two commands: `make run` and `make test`. Both set up what is missing first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SYSTEM_PACKAGES := espeak-ng ffmpeg

.PHONY: run test install system-deps migrate clean

run: install system-deps
	$(VENV)/bin/gatewayctl db upgrade
	$(VENV)/bin/gatewayctl run --demo --no-migrate

test: install system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# espeak-ng (speech) and ffmpeg (telephony audio) come from the system's packages.
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
		|| { echo "could not install$$missing: install them with your package manager"; exit 1; }; \
	fi

migrate: install
	$(VENV)/bin/gatewayctl db upgrade

clean:
	rm -rf $(VENV) data .pytest_cache
