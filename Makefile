# CRM Desktop: `make run` sets up and opens the app (demo sandboxes); `make test` sets up and runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint system-packages venv clean

run: system-packages venv
	$(BIN)/crm-desktop --demo

test: system-packages venv
	sh tools/run-tests.sh $(VENV)

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
