SHELL := /bin/bash
# Attention, Step by Step. `make book` builds the book, `make test` runs every test.
# Both set everything up first: a virtual environment with the pinned set (requirements.txt),
# SmolLM2's weights (requirements-nodeps.txt, without the package's declared dependencies),
# the course package (editable), and the site's vendored scripts.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JB     := $(BIN)/jupyter-book build . -W -n --keep-going
# The Chinese edition (zh/, written by scripts/zh_edition.py from the English and locales/)
# reuses the English execution from the shared cache and is served from _build/html/zh/.
JB_ZH  := $(BIN)/jupyter-book build zh --path-output _build/zh -W -n --keep-going
export PYTHONHASHSEED := 0
export COURSE_THREADS ?= 2

.PHONY: book test bench robust setup browser lint lab mutate lock clean help

help:
	@echo "make book   build the whole book (every notebook executed) into _build/html"
	@echo "make test   run every test: unit, reference, property, nbval, build and browser"
	@echo "make bench  time each chapter and the from-scratch-vs-reference speed ratios"
	@echo "make robust every chapter under 5 seeds x 2 kernel paths (+1 thread): which claims hold"
	@echo "make lab    open the chapters in JupyterLab (pinned; widgets work)"
	@echo "make lint   ruff (lint and format, 88 columns) and zizmor (the workflows)"

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is needed, found " + sys.version' 
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -m pip install --quiet -r requirements.txt 2>&1 | grep -v "^WARNING: Location"; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt 2>&1 | \
	  grep -v "^WARNING: Location"; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/python -m pip install --quiet --no-deps -e . 2>&1 | grep -v "^WARNING: Location"; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

_vendor/.stamp: scripts/vendor_js.sh
	bash scripts/vendor_js.sh _vendor
	touch $@

setup: $(STAMP) _vendor/.stamp

# The execution cache keys on the notebooks' code only, so a change in utils/ (which the
# chapters import and show), in the seed or in the kernel path would leave stale outputs:
# drop the cache when one of them changes.
UTILS_HASH = $(shell { cat $$(find utils -name '*.py' | sort); \
	echo "$$COURSE_SEED $$ATEN_CPU_CAPABILITY"; } | sha256sum | cut -c1-16)
FRESH_CACHE = [ "$$(cat _build/.utils-hash 2>/dev/null)" = "$(UTILS_HASH)" ] || \
	{ rm -rf _build/.jupyter_cache; mkdir -p _build; echo $(UTILS_HASH) > _build/.utils-hash; }

book: setup
	@$(FRESH_CACHE)
	@$(JB) || { echo; echo "The book build failed: the failing notebook, cell and traceback are above."; exit 1; }
	@start=$$(date +%s); $(BIN)/python scripts/zh_edition.py --draft && \
	  { $(JB_ZH) || { echo; echo "The Chinese edition's build failed: see above."; exit 1; }; } && \
	  rm -rf _build/html/zh && cp -r _build/zh/_build/html _build/html/zh && \
	  echo "The Chinese edition took $$(( $$(date +%s) - start )) s (no notebook executed)"
	@$(BIN)/python scripts/export_notebooks.py
	@echo; echo "The book is in $(CURDIR)/_build/html/index.html (中文版: _build/html/zh/index.html)"

# Headless Chromium for the browser tests: Debian's package, installed when missing and allowed.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ; } || \
	  echo "chromium is not installed and cannot be installed here: the browser tests will fail"

lint: $(STAMP)
	$(BIN)/ruff check utils benchmarks scripts tests conftest.py
	$(BIN)/ruff format --check utils benchmarks scripts conftest.py
	$(BIN)/zizmor --offline --quiet --config .github/zizmor.yml --persona=pedantic .github/workflows

# Notebooks run with the course's two threads (COURSE_THREADS) in book, test and bench
# alike, so they compute the same numbers. Two pytest workers share the two cores; idle
# threads sleep instead of spinning (OMP_WAIT_POLICY), which keeps that cheap.
# Each chapter executes once: nbval's execution of a chapter whose every cell passed goes
# into the book's execution cache (conftest.py), and the build test then takes it from
# there. Both phases run, so that one report lists every failure.
test: setup browser lint
	@$(FRESH_CACHE)
	@OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -n 2 --dist loadfile --nbval-lax -ra \
	  --ignore=tests/test_book.py; units=$$?; \
	COURSE_BOOK_FROM_NBVAL=1 $(BIN)/python -m pytest tests/test_book.py -ra; \
	book=$$?; exit $$(( units || book ))

# Mutation testing against the unit tests (not part of make test): pinned mutmut, installed
# on demand. All of utils/ is about 8,600 mutants: the model modules run at 100-300 a
# minute on two cores, the experiment modules (whose tests train) much slower, so run it
# per module, e.g. make mutate ONLY='utils.attention.*' (mutant names are globbed)
ONLY ?= utils.*
mutate: $(STAMP)
	$(BIN)/python -m pip install --quiet mutmut==3.8.1 2>&1 | grep -v "^WARNING: Location" || true
	# one torch thread: OpenMP's thread pool does not survive mutmut's fork, and a mutant
	# whose tests deadlock would be counted as a timeout instead of being tested
	COURSE_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children 2 '$(ONLY)'
	$(BIN)/mutmut results

# JupyterLab for running the chapters yourself: pinned, and constrained by the lock so it
# cannot change a package the book was tested with.
lab: setup
	$(BIN)/python -m pip install --quiet jupyterlab==4.6.6 -c requirements.txt 2>&1 | \
	  grep -v "^WARNING: Location"; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/jupyter lab chapters/

bench: setup
	$(BIN)/python scripts/bench.py

# Every chapter under COURSE_SEED 0-4 on the native and the portable kernels, plus one
# run on one thread (about two hours on 2 cores; CHAPTERS=07,10 restricts it). Writes
# _build/robust.json and prints, per claim, the runs in which it held. Not in make test.
robust: setup
	$(BIN)/python scripts/robust.py $(if $(RESUME),--resume) $(ROBUST_ARGS)

# The lock is the same on any machine: torch comes from PyTorch's CPU wheel index (the
# default index's Linux wheel is the CUDA build, whose nvidia-* packages would enter the
# lock), everything else from the default index. Binder's runtime list follows from it.
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
LOCK_VENV := /tmp/attention-lock
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --extra-index-url $(TORCH_CPU_INDEX) \
	  "$$(grep '^torch==' requirements.in | sed 's/ .*//')+cpu"
	$(LOCK_VENV)/bin/pip install --quiet -r requirements.in
	{ sed -n '1,3p' requirements.txt; $(LOCK_VENV)/bin/pip freeze --exclude-editable | \
	  sed 's/^torch==\(.*\)+cpu/torch==\1/'; } > requirements.txt.new
	! grep -iE '^(nvidia-|triton)' requirements.txt.new || \
	  { echo "the lock has CUDA packages: torch was not the CPU build"; exit 1; }
	mv requirements.txt.new requirements.txt
	$(LOCK_VENV)/bin/python scripts/runtime_requirements.py

clean:
	rm -rf _build
