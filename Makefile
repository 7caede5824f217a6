# The two commands: `make demo` (main job on embedded synthetic data) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Real data location (CONTRIBUTING.md): override with FOCUSNET_DATA=/path
export FOCUSNET_DATA ?= $(abspath ../shared/data)

.PHONY: test demo install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: a bare `torch` would pull a multi-GB CUDA build
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# lint and types first (seconds; see [tool.ruff] and [tool.mypy] in pyproject.toml), then the tests
test: $(STAMP)
	$(VENV)/bin/ruff check focusnet tests benchmarks scripts
	$(VENV)/bin/mypy focusnet
	$(PY) -m pytest -q -ra

demo: $(STAMP)
	$(VENV)/bin/focusnet demo

clean:
	rm -rf $(VENV) build *.egg-info
