# The whole set-up is `make demo` (run the mission on built-in demo data) and
# `make test` (run the test suite).  Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

# torch and torchvision are installed first and pinned exactly: the CPU build of
# torch 2.13.0 (pip finds it where the machine provides it, e.g. with
# PIP_FIND_LINKS or --index-url https://download.pytorch.org/whl/cpu) and the
# torchvision that pairs with it.  Installing them together with everything else
# lets pip backtrack to an older CUDA build and gigabytes of nvidia-* wheels.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0" "torchvision==0.28.0"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) jobs/check_cpu_install.py
	touch $(STAMP)

demo: $(STAMP)
	$(PY) jobs/demo.py --out demo_output

# Everything (CI).  Markers: slow (learning runs, ray job submit, kill/resume), ray, s3.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The fast tier: all but the slow tests (about 4 minutes on a quiet 2-core machine; the goal is 2).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo_output .pytest_cache
