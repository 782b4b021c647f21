# The two set-up commands of the README. Both create the virtual environment at .venv.
#   make demo   set up, then run the offline demo on the bundled int8 ResNet-8
#   make test   set up with the test extras, then run the test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# What the installed package is built from: the install reruns only when one of them changes.
SOURCES := $(shell find pyproject.toml CMakeLists.txt axonnx passes customops zoo -type f \
             -not -path '*/__pycache__/*' -not -path 'zoo/resnet8/runs/*' 2>/dev/null)

.PHONY: demo test setup setup-test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip

$(STAMP): $(SOURCES) | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q .
	touch $@

# The test extras include the package: this install also stands for setup's.
$(TEST_STAMP): $(SOURCES) | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q ".[test]"
	touch $@ $(STAMP)

setup: $(STAMP)

setup-test: $(TEST_STAMP)

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
