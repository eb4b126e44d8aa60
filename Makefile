# The two commands the README opens with:
#   make demo   -- run the talk's examples end to end
#   make test   -- lint, type-check, and run the tests on Python 3.11, 3.12 and 3.13,
#                  and once more on 3.12 without the C accelerator (THREADPATCH_PURE_PYTHON=1);
#                  then CPython's own suites (the fast set) under patch_all() on each Python
# Each creates the virtual environments it needs under .venv/.

PYTHONS ?= 3.11 3.12 3.13
# The pure-Python leg: the reference code the C accelerator must match, on one Python.
PURE_PY ?= 3.12
DEMO_PY ?= 3.11

.PHONY: demo test lint bench clean conformance conformance-fast

demo: .venv/$(DEMO_PY)/.ok
	.venv/$(DEMO_PY)/bin/python examples/run_all.py

test: $(foreach v,$(sort $(PYTHONS) $(PURE_PY)),.venv/$(v)/.ok)
	.venv/3.11/bin/ruff check threadpatch tests integration benchmarks examples
	.venv/3.11/bin/mypy
	@failed=""; for v in $(PYTHONS); do \
		echo "=== Python $$v ==="; \
		.venv/$$v/bin/python -m pytest -p no:cacheprovider -q || failed="$$failed $$v"; \
	done; \
	echo "=== Python $(PURE_PY), THREADPATCH_PURE_PYTHON=1 ==="; \
	THREADPATCH_PURE_PYTHON=1 .venv/$(PURE_PY)/bin/python -m pytest -p no:cacheprovider -q \
		|| failed="$$failed $(PURE_PY)(pure-Python)"; \
	if [ -n "$$failed" ]; then echo "tests failed on Python$$failed"; exit 1; fi
	@$(MAKE) --no-print-directory conformance-fast

# -- conformance: CPython's own regression suites under patch_all() ----------------
# (tests/conformance/cpython_suites.py).  Fails on a failure not in
# tests/conformance/known_failures.txt and on a known failure that now passes.
# `make conformance` runs every suite on one Python (CONFORMANCE_PY);
# `make test` runs the fast set on every Python (conformance-fast).
CONFORMANCE_PY ?= 3.12
CONFORMANCE_JOBS ?= 2

conformance: .venv/$(CONFORMANCE_PY)/.ok
	.venv/$(CONFORMANCE_PY)/bin/python -m tests.conformance.cpython_suites check -j $(CONFORMANCE_JOBS)

conformance-fast: $(foreach v,$(PYTHONS),.venv/$(v)/.ok)
	@failed=""; for v in $(PYTHONS); do \
		echo "=== CPython's suites under patch_all() (fast set), Python $$v ==="; \
		.venv/$$v/bin/python -m tests.conformance.cpython_suites check --fast -j $(CONFORMANCE_JOBS) \
			|| failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "conformance failed on Python$$failed"; exit 1; fi

bench: .venv/$(DEMO_PY)/.ok
	.venv/$(DEMO_PY)/bin/python -m pip install -q -e '.[bench]'  # gevent, for the comparison
	.venv/$(DEMO_PY)/bin/python -m benchmarks

.venv/%/.ok: pyproject.toml setup.py $(wildcard threadpatch/_speedups*.[ch])
	@py=$$(scripts/find-python $*); \
	echo "creating .venv/$* with $$py"; \
	$$py -m venv --clear .venv/$* && \
	.venv/$*/bin/python -m pip install -q --upgrade pip && \
	.venv/$*/bin/python -m pip install -q -e '.[test,dev]' && touch $@

clean:
	rm -rf .venv
