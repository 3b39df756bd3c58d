# Two commands (README): `make run` sets up .venv and starts the product;
# `make test` sets up .venv with the dev tools and runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test setup setup-dev browser lint train evaluate validate bench clean

run: setup
	$(PY) launcher.py $(ARGS)

test: setup-dev browser
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Re-install only when a requirements or constraints file changed (stamp files).
$(VENV)/.runtime: requirements.txt constraints.txt | $(PY)
	$(PIP) install -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt constraints.txt | $(PY)
	$(PIP) install -r requirements-dev.txt -c constraints.txt
	touch $(VENV)/.runtime $@

setup: $(VENV)/.runtime
setup-dev: $(VENV)/.dev

# Real-browser tests drive Debian's Chromium (never a downloaded browser); the PDF report
# tests read pages with poppler's pdftotext/pdftoppm.
browser:
	@{ command -v chromium && command -v pdftotext; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils >/dev/null; \
	  else echo "note: install Chromium and poppler-utils (apt-get install chromium poppler-utils) to run the browser and PDF tests"; fi; }

lint: setup-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

train: setup-dev
	$(PY) scripts/fast_batch_process.py
	$(PY) scripts/gpu_optimized_train.py --lodo
	$(PY) scripts/ecg_train.py

evaluate: setup-dev
	$(PY) scripts/evaluate.py
	$(PY) scripts/phone_simulation.py
	$(PY) scripts/ecg_evaluate.py

validate: setup
	$(PY) validation/phase1_validation.py

bench: setup
	$(PY) benchmarks/bench_inference.py --out models/evaluation/benchmark.json
	$(PY) benchmarks/bench_ecg.py --out models/evaluation/ecg_benchmark.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
