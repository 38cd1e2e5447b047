# CRM Desktop: `make run` sets up and opens the app (demo sandboxes); `make test` sets up and runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint package system-packages venv clean

run: system-packages venv
	$(BIN)/crm-desktop --demo

test: system-packages venv
	sh tools/run-tests.sh $(VENV)

# The packaged app (no Python needed to run it): dist/crm-desktop/ and dist/crm-desktop-<version>-linux-<arch>.tar.gz.
package: system-packages venv
	$(BIN)/pip install -q -e '.[package]'
	sh packaging/build.sh $(VENV)

lint: venv
	$(BIN)/ruff check crm_desktop tests bench
	$(BIN)/mypy crm_desktop

system-packages:
	sh tools/system-packages.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	sh tools/make-venv.sh $(PYTHON) $(VENV)
	touch $@

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
