# The two commands the README opens with:
#   make demo   -- run the examples end to end
#   make test   -- lint, type-check, build the docs (warnings are errors), and run the tests on
#                  Python 3.11, 3.12 and 3.13 (on COVER_PY with line and branch coverage of
#                  threadpatch/, failing under the floor in pyproject.toml), and once more on
#                  3.12 without the C accelerator (THREADPATCH_PURE_PYTHON=1); then CPython's
#                  own suites under patch_all() on each Python (conformance-all)
# Each creates the virtual environments it needs under .venv/.
# Also: make docs (the site, into site/), make dist (sdist + wheel into dist/, twine-checked),
# make coverage (the coverage leg alone), make bench.

PYTHONS ?= 3.11 3.12 3.13
# The pure-Python leg: the reference code the C accelerator must match, on one Python.
PURE_PY ?= 3.12
# The leg measured with coverage.py (the others run at full speed).
COVER_PY ?= 3.12
DEMO_PY ?= 3.11
DOCS_PY ?= 3.12
PYTEST = -m pytest -p no:cacheprovider -q

.PHONY: demo test lint docs dist coverage bench clean conformance conformance-all conformance-fast

demo: .venv/$(DEMO_PY)/.ok
	.venv/$(DEMO_PY)/bin/python examples/run_all.py

test: $(foreach v,$(sort $(PYTHONS) $(PURE_PY) $(DOCS_PY)),.venv/$(v)/.ok)
	.venv/3.11/bin/ruff check threadpatch tests integration benchmarks examples
	.venv/3.11/bin/mypy
	$(MAKE) --no-print-directory docs
	@failed=""; for v in $(PYTHONS); do \
		if [ "$$v" = "$(COVER_PY)" ]; then \
			echo "=== Python $$v, with coverage ==="; \
			$(MAKE) --no-print-directory coverage || failed="$$failed $$v"; \
		else \
			echo "=== Python $$v ==="; \
			.venv/$$v/bin/python $(PYTEST) || failed="$$failed $$v"; \
		fi; \
	done; \
	echo "=== Python $(PURE_PY), THREADPATCH_PURE_PYTHON=1 ==="; \
	THREADPATCH_PURE_PYTHON=1 .venv/$(PURE_PY)/bin/python $(PYTEST) \
		|| failed="$$failed $(PURE_PY)(pure-Python)"; \
	if [ -n "$$failed" ]; then echo "tests failed on Python$$failed"; exit 1; fi
	@$(MAKE) --no-print-directory conformance-all

# -- conformance: CPython's own regression suites under patch_all() ----------------
# (tests/conformance/cpython_suites.py).  Fails on a failure not in
# tests/conformance/known_failures.txt and on a known failure that now passes.
# `make conformance` runs every suite on one Python (CONFORMANCE_PY, 3.5 min on 3.12 and
# 4.6 min on 3.13 with 2 jobs on a 2-core machine); `make test` runs them on every Python
# (conformance-all); `make conformance-fast` runs the fast set (`check --fast`) on each.
CONFORMANCE_PY ?= 3.12
CONFORMANCE_JOBS ?= 2

conformance: .venv/$(CONFORMANCE_PY)/.ok
	.venv/$(CONFORMANCE_PY)/bin/python -m tests.conformance.cpython_suites check -j $(CONFORMANCE_JOBS)

conformance-all conformance-fast: $(foreach v,$(PYTHONS),.venv/$(v)/.ok)
	@failed=""; for v in $(PYTHONS); do \
		echo "=== CPython's suites under patch_all() ($@), Python $$v ==="; \
		.venv/$$v/bin/python -m tests.conformance.cpython_suites check -j $(CONFORMANCE_JOBS) \
			$(if $(filter conformance-fast,$@),--fast) || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "conformance failed on Python$$failed"; exit 1; fi

# The suite under coverage.py: threads and child interpreters are measured
# ([tool.coverage] in pyproject.toml); fails under its fail_under.  The soak test
# runs on the other legs only: it fails when memory grows from round to round,
# and coverage's own records of newly reached lines and branches do.
COVER_DESELECT = --deselect tests/test_soak.py::test_soak_under_faults
coverage: .venv/$(COVER_PY)/.ok
	rm -f .coverage .coverage.*
	.venv/$(COVER_PY)/bin/python -m coverage run $(PYTEST) $(COVER_DESELECT)
	.venv/$(COVER_PY)/bin/python -m coverage combine -q
	.venv/$(COVER_PY)/bin/python -m coverage report --format=total > /dev/null \
		|| { .venv/$(COVER_PY)/bin/python -m coverage report; exit 1; }
	@echo "line and branch coverage of threadpatch/: $$(.venv/$(COVER_PY)/bin/python -m coverage report --format=total)%"

# Not --quiet: it hides the very warnings that --strict turns into a failure.
docs: .venv/$(DOCS_PY)/.ok
	NO_MKDOCS_2_WARNING=1 .venv/$(DOCS_PY)/bin/python -m mkdocs build --strict --site-dir site

dist: .venv/$(DOCS_PY)/.ok
	rm -rf dist
	.venv/$(DOCS_PY)/bin/python -m build --outdir dist .
	.venv/$(DOCS_PY)/bin/python -m twine check --strict dist/*

bench: .venv/$(DEMO_PY)/.ok
	.venv/$(DEMO_PY)/bin/python -m pip install -q -e '.[bench]'  # gevent, for the comparison
	.venv/$(DEMO_PY)/bin/python -m benchmarks

.venv/%/.ok: pyproject.toml setup.py $(wildcard threadpatch/_speedups*.[ch])
	@py=$$(scripts/find-python $*); \
	echo "creating .venv/$* with $$py"; \
	$$py -m venv --clear .venv/$* && \
	.venv/$*/bin/python -m pip install -q --upgrade pip && \
	.venv/$*/bin/python -m pip install -q -e '.[test,dev,docs]' && touch $@

clean:
	rm -rf .venv site dist .coverage .coverage.*
