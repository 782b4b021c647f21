# The two set-up commands of the README. Both create the virtual environment at .venv.
#   make demo   set up, then run the offline demo on the bundled int8 ResNet-8
#   make test   set up with the test extras, then run the test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test setup setup-test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip

setup: $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q .

setup-test: $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q ".[test]"

demo: setup
	$(VENV)/bin/axonnx demo

# -P keeps the source tree off sys.path, so the tests exercise the installed package
# (with its compiled custom-op library and axonnx.passes).
test: setup-test
	$(VENV)/bin/python -P -m pytest

bench: setup-test
	$(VENV)/bin/python -P bench/bench_kernel.py

clean:
	rm -rf build $(VENV) .pytest_cache
