# `make book` and `make test` do all set-up on a fresh machine: a .venv/ in the repository root, reused as
# long as requirements.txt and pyproject.toml are unchanged.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
export UNLEARNLIB_CACHE ?= $(CURDIR)/_build/cache
# Bytecode: where PYTHONDONTWRITEBYTECODE is set (this workplace and its CI set it), every process compiled the
# modules it imports from source again -- each notebook kernel and each CLI test spent ~6 s compiling torch,
# matplotlib and pandas (import of those: 10.5 s without bytecode, 4-5 s with). The venv's processes write their
# bytecode once, under .venv/pycache (PYTHONPYCACHEPREFIX), so the source tree stays clean.
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX ?= $(CURDIR)/$(VENV)/pycache

.PHONY: book test test-unit evidence lint venv clean check-html

book: $(STAMP)
	$(PY) tools/book.py all

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

# The inner loop: every test but those that execute the chapters or build the HTML (book) and the slow ones.
test-unit: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not book and not slow"

# The evidence the book reports (results/, with provenance; results/README.md): the final robustness grid, every
# defense and composition on each cell (about two hours on a 2-core CPU), the retuning attack after every defense
# (seeds 0-2, and the final grid's first cells) and every defense on clean models. Resumable: finished cells are
# kept in each folder's cells/.
FINAL_GRID_SEED := 20261204
evidence: $(STAMP)
	$(PY) -m unlearnlib bench --grid robustness --cells 120 --grid-seed $(FINAL_GRID_SEED) --defenses all \
		--out results/final-grid --no-progress
	$(PY) -m unlearnlib bench --seeds 0 1 2 --defenses all --retune --out results/reactivation-tuning --no-progress
	$(PY) -m unlearnlib bench --grid robustness --cells 24 --grid-seed $(FINAL_GRID_SEED) --defenses all --retune \
		--out results/reactivation-grid --no-progress
	$(PY) -m unlearnlib bench --seeds 0 1 2 --attacks badnets --defenses all --victim clean \
		--out results/clean-tuning --no-progress
	$(PY) -m unlearnlib bench --grid robustness --cells 24 --grid-seed $(FINAL_GRID_SEED) --defenses all \
		--victim clean --out results/clean-grid --no-progress

# Every page of _build/html in headless Chromium (Debian: chromium, chromium-driver); skipped when not installed.
check-html: $(STAMP)
	$(PY) tools/check_html.py

lint: $(STAMP)
	$(PY) -m ruff check .

venv: $(STAMP)

# --no-compile: each module's bytecode is written on its first import (above), so only the modules used are
# compiled (byte-compiling all 14,000 files of the venv took 44 s on both cores of this machine).
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is required (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	rm -rf _build
