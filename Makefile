# boothgate — one command per task. `make run` and `make test` install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.test-installed
BENCH_STAMP := $(VENV)/.bench-installed
# The manual (docs/ built by mkdocs-material), served by the server at /help; not committed.
MANUAL := src/boothgate/web/manual/index.html
MANUAL_SOURCES := mkdocs.yml scripts/mkdocs_hooks.py $(shell find docs -type f 2>/dev/null)
# The offline engine's models ship inside this wheel (the last mediapipe release that bundles them).
MEDIAPIPE := mediapipe==0.10.21

.PHONY: install run test lint format bench clean docs manual local-engine lock

# Every install is constrained by requirements.lock: the exact versions this code was tested with.
# scripts/pip_install.py: pip install, without the known "mediapipe requires jax" block (see that file).
PIP_INSTALL := $(BIN)/python scripts/pip_install.py --quiet -c requirements.lock

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e .
	$(MAKE) --no-print-directory local-engine
	touch $(STAMP)

# mediapipe without the jax, jaxlib, matplotlib and sounddevice it declares but the offline engine never
# imports (pyproject.toml lists what it does need). Wheels exist for CPython 3.11 and 3.12 only; on
# another Python the offline tab says so and everything else works.
local-engine:
	@if $(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))'; then \
		$(BIN)/python -m pip install --quiet --no-deps $(MEDIAPIPE); \
	else \
		echo "Offline engine skipped: mediapipe 0.10.21 needs Python 3.11 or 3.12."; \
	fi

install: $(STAMP) $(MANUAL)

# Strict (a link or anchor that does not resolve fails the build) and quiet unless it fails (~1 s).
# Not `mkdocs -q`: it hides the warnings that strict mode counts, and a broken link would pass.
$(MANUAL): $(MANUAL_SOURCES) | $(STAMP)
	@NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build > $(VENV)/mkdocs.log 2>&1 \
		|| { cat $(VENV)/mkdocs.log; rm -f $@; echo "The manual did not build (see above)."; exit 1; }

manual: $(MANUAL)

$(TEST_STAMP): $(STAMP)
	$(PIP_INSTALL) -e '.[test]'
	bash scripts/install-test-system-deps.sh
	touch $(TEST_STAMP)

# Host and port come from the settings (BOOTHGATE_HOST / BOOTHGATE_PORT, or .env); `make run PORT=8011`
# (or PORT in the environment, as hosting platforms set it) passes a flag that wins over them.
run: $(STAMP) $(MANUAL)
	BOOTHGATE_DATA_DIR=$${BOOTHGATE_DATA_DIR:-./data} $(BIN)/boothgate serve $(if $(PORT),--port $(PORT))

test: $(TEST_STAMP) $(MANUAL)
	$(BIN)/python -m pytest -q

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/python scripts/check_layers.py
	$(BIN)/python scripts/check_links.py

format: $(TEST_STAMP)
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

$(BENCH_STAMP): $(TEST_STAMP)
	$(PIP_INSTALL) -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The settings table in docs/settings.md from the settings class, then the manual (strict).
docs: $(STAMP)
	$(BIN)/python scripts/update_settings_doc.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build

# Write requirements.lock from a fresh install of pyproject.toml's newest allowed versions (then run make test).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e '.[test]'
	{ sed -n '1,4p' requirements.lock; .lock-venv/bin/python -m pip freeze --exclude-editable \
		| grep -v '^mediapipe==' \
		| sed -E 's/^((numpy|absl-py|attrs|flatbuffers|protobuf)==[^ ]+)$$/\1; python_version < "3.13"/'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lock-venv
