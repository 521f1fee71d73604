# The two commands: `make run` and `make test`. Both set up what is missing first. `make lint` checks the rules.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SYSTEM_PACKAGES := espeak-ng ffmpeg

.PHONY: run test lint install system-deps migrate clean

run: install system-deps
	$(VENV)/bin/gatewayctl db upgrade
	$(VENV)/bin/gatewayctl run --demo --no-migrate

test: install system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff's rules and import-linter's contracts are in pyproject.toml.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "creating the virtual environment in $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing the Python packages into $(VENV) (a minute or two the first time)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# espeak-ng (speech) and ffmpeg (telephony audio) come from the system's packages. When another apt or the
# system's unattended upgrades hold the package lock, wait for it (up to 10 minutes) rather than fail.
APT := apt-get -o DPkg::Lock::Timeout=600
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing (waiting for the package lock if another install runs)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		for i in 1 2 3 4 5 6 7 8 9 10; do $$SUDO $(APT) update -qq && break; \
			echo "apt-get update failed (the package lists may be locked); trying again in 30 s"; sleep 30; done; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive $(APT) install -y -q $$missing \
		|| { echo "could not install$$missing: install them with your package manager"; exit 1; }; \
	fi

migrate: install
	$(VENV)/bin/gatewayctl db upgrade

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .import_linter_cache .grimp_cache
