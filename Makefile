# The README's commands. Everything installs into .venv from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build of torch (a local wheel on our machines; on others pip takes it from PyPI).
TORCH ?= torch==2.13.0
PACKAGES := -e ./core[test] -e ./plugins/cpu -e ./plugins/triton[test] -e ./plugins/cuda -e ./plugins/rocm -e ./plugins/tpu -e ./plugins/quant
DEMO_MODEL := $(wildcard demo_model/pyproject.toml)

.PHONY: install serve run test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip "setuptools>=77" wheel

# --no-build-isolation: plugins/cpu compiles its native kernels against the torch installed first.
$(VENV)/.installed: $(BIN)/python core/pyproject.toml $(wildcard plugins/*/pyproject.toml) $(DEMO_MODEL)
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet --no-build-isolation $(PACKAGES) $(if $(DEMO_MODEL),-e ./demo_model)
	touch $@

## install: create .venv with core, every plugin and the demo model
install: $(VENV)/.installed

## serve: install, then serve the offline default model on http://127.0.0.1:8000 (OpenAI API)
serve: install
	$(BIN)/llmrt serve $(SERVE_ARGS)

## run: install, then complete one prompt offline with the default model
run: install
	$(BIN)/llmrt plugins
	$(BIN)/llmrt generate --prompt "def fibonacci(n):" --max-tokens 64

## test: install, then run the whole test suite
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not serial" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -q -m serial $(PYTEST_ARGS)

clean:
	rm -rf $(VENV)
