# leakguard developer tasks: `make help` lists them. CI runs `make test` (see .ci/run).
#
# Every target sets up what it needs (venv, build) and is safe to run twice.
# Variables (override on the command line, e.g. `make test MATRIX=0`):
#   PYTHON          interpreter for .venv (default python3.11; falls back to
#                   pyenv's 3.11, then to python3 if that is CPython 3.9-3.13)
#   MATRIX          0 = `make test` skips the multi-version matrix
#   MATRIX_PYTHONS  CPython versions the matrix tries (default: all supported)
#   PYTEST_ARGS     extra pytest arguments, for `test`, `pytest` and `matrix`
#   ARGS            extra arguments for `run` and `bench`

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
# Each recipe is one bash script, so the helper functions below are in scope.
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --no-print-directory

PYTHON ?= python3.11
SUPPORTED_PYTHONS := 3.9 3.10 3.11 3.12 3.13
VENV ?= .venv
VPY := $(VENV)/bin/python
REQUIREMENTS := requirements-dev.txt
STAMP := .requirements-dev.stamp
# Optional integrations (Jupyter kernel, pandas) and the libraries the export
# tests decode with (protobuf, jsonschema), in .venv only: their
# pins need CPython 3.11 or later.
EXTRAS := requirements-extras.txt
EXTRAS_STAMP := .requirements-extras.stamp
MATRIX ?= 1
MATRIX_PYTHONS ?= $(SUPPORTED_PYTHONS)
# Versions `matrix` leaves out; `test` passes the primary one, already tested in .venv.
MATRIX_SKIP ?=
PYTEST_ARGS ?=
ARGS ?=
# The matrix checks that the extension builds against each interpreter's headers
# and passes the tests there. It keeps opt-level 3 (optimised code is what ships
# and what surfaces undefined behaviour) but drops the release profile's thin LTO,
# single codegen unit and debug info, which only serve the shipped module and cost
# 15-25% of each cold matrix build on 2 cores (measured: 55s -> 46s).
MATRIX_CARGO_ENV ?= CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
	CARGO_PROFILE_RELEASE_DEBUG=0

export PIP_DISABLE_PIP_VERSION_CHECK := 1

# Shell helpers shared by the recipes (each recipe is one bash script).
define SH_LIB
# py_minor EXE: prints "3.X" when EXE runs and is CPython; fails otherwise.
py_minor() {
	"$$1" -c 'import sys; assert sys.implementation.name == "cpython"; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}
# find_python 3.X: prints the path of a working CPython 3.X, looking on PATH
# (python3.X) and then at the interpreters pyenv has installed.
find_python() {
	local want=$$1 root c vers
	root=$${PYENV_ROOT:-$$HOME/.pyenv}
	if command -v pyenv >/dev/null 2>&1; then
		root=$$(pyenv root)
		vers=$$(pyenv versions --bare 2>/dev/null || true)
	else
		vers=$$(ls "$$root/versions" 2>/dev/null || true)
	fi
	for c in "python$$want" $$(grep -E "^$${want//./\\.}\.[0-9]+$$" <<<"$$vers" | sort -V -r | sed "s|^|$$root/versions/|; s|$$|/bin/python$$want|"); do
		if [ "$$(py_minor "$$c")" = "$$want" ]; then
			"$$c" -c 'import sys; print(sys.executable)'
			return 0
		fi
	done
	return 1
}
# primary_python: prints the interpreter for .venv: $(PYTHON), else pyenv's 3.11,
# else python3, whichever first is a supported CPython that can make a venv.
primary_python() {
	local c m
	for c in "$(PYTHON)" "$$(find_python 3.11 || true)" python3; do
		[ -n "$$c" ] || continue
		m=$$(py_minor "$$c") || continue
		case " $(SUPPORTED_PYTHONS) " in
			*" $$m "*) ;;
			*) echo "note: $$c is CPython $$m; leakguard supports $(SUPPORTED_PYTHONS)" >&2; continue ;;
		esac
		if ! "$$c" -c 'import venv, ensurepip' 2>/dev/null; then
			echo "note: $$c (CPython $$m) has no venv/ensurepip module (Debian: apt-get install python$$m-venv); trying the next interpreter" >&2
			continue
		fi
		[ "$$c" = "$(PYTHON)" ] || echo "note: $(PYTHON) not usable; falling back to $$c" >&2
		echo "$$c"
		return 0
	done
	echo "error: no usable interpreter: tried $(PYTHON), pyenv's 3.11 and python3; need CPython" >&2
	echo "       3.9-3.13 with venv and pip (install python3.11 with pyenv, or set PYTHON=...)" >&2
	return 1
}
# make_venv DIR EXE: creates a virtualenv, explaining what is missing if it cannot.
make_venv() {
	local dir=$$1 py=$$2
	echo "creating $$dir with $$py (CPython $$(py_minor "$$py"))"
	if ! "$$py" -c 'import venv, ensurepip' 2>/dev/null || ! "$$py" -m venv "$$dir"; then
		rm -rf "$$dir"
		echo "error: $$py cannot create a virtualenv with pip: its venv/ensurepip modules are" >&2
		echo "       missing (Debian: apt-get install python3.X-venv; or use a pyenv build)." >&2
		return 1
	fi
}
# install_requirements DIR: installs the pinned dev tools, only when the pins changed.
install_requirements() {
	local dir=$$1
	if [ -e "$$dir/$(STAMP)" ] && [ ! "$(REQUIREMENTS)" -nt "$$dir/$(STAMP)" ]; then return 0; fi
	"$$dir/bin/python" -m pip install --progress-bar off -q -r "$(REQUIREMENTS)"
	touch "$$dir/$(STAMP)"
}
# install_extras DIR: installs the optional integrations when the venv's
# CPython can take them (3.11+), only when the pins changed.
install_extras() {
	local dir=$$1
	if [ -e "$$dir/$(EXTRAS_STAMP)" ] && [ ! "$(EXTRAS)" -nt "$$dir/$(EXTRAS_STAMP)" ]; then return 0; fi
	if ! "$$dir/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
		echo "note: $$dir is CPython $$(py_minor "$$dir/bin/python"); the notebook, pandas and export-decoding tests need 3.11+ and will skip"
		return 0
	fi
	"$$dir/bin/python" -m pip install --progress-bar off -q -r "$(EXTRAS)"
	touch "$$dir/$(EXTRAS_STAMP)"
}
# step CMD...: runs one check, times it, and records a failure without stopping.
failed=()
step() {
	local t=$$SECONDS
	echo "==> $$*"
	if "$$@"; then
		echo "<== ok ($$((SECONDS - t))s): $$*"
	else
		echo "<== FAILED ($$((SECONDS - t))s): $$*"
		failed+=("$$*")
	fi
}
# finish: fails the recipe if any step failed, listing them.
finish() {
	if (( $${#failed[@]} )); then
		printf 'FAILED: %s\n' "$${failed[@]}" >&2
		exit 1
	fi
}
endef

# The checks `lint` and `test` run (on the primary interpreter's build).
define LINT_STEPS
step cargo fmt --all -- --check
step cargo clippy --all-targets -- -D warnings
step env PYO3_PYTHON="$(CURDIR)/$(VPY)" cargo clippy --features python -- -D warnings
step "$(VENV)/bin/ruff" check .
step "$(VENV)/bin/ruff" format --check .
step "$(VPY)" -m mypy.stubtest leakguard._leakguard --mypy-config-file pyproject.toml
step "$(VPY)" -m mypy python/leakguard
endef

.PHONY: help venv build run test test-rust lint pytest matrix bench fmt clean distclean

help: ## Show this list of targets
	@echo "leakguard: make <target> [VAR=value ...]"
	echo
	grep -hE '^[a-zA-Z0-9_.%-]+:.*## ' $(MAKEFILE_LIST) \
		| sed 's/%/3.X/' \
		| awk 'BEGIN {FS = ":.*## "} {printf "  %-13s %s\n", $$1, $$2}'
	echo
	echo "Variables: PYTHON=$(PYTHON) MATRIX=$(MATRIX) MATRIX_PYTHONS='$(MATRIX_PYTHONS)'"
	echo "           PYTEST_ARGS='$(PYTEST_ARGS)' ARGS='$(ARGS)' (see the top of the Makefile)"

venv: ## Create .venv (python3.11) with the pinned dev tools and optional integrations
	@$(SH_LIB)
	# A venv whose interpreter went away is rebuilt, not patched.
	if [ -e $(VENV)/pyvenv.cfg ] && ! py_minor "$(VPY)" >/dev/null; then rm -rf $(VENV); fi
	if [ ! -e $(VENV)/pyvenv.cfg ]; then
		py=$$(primary_python)
		make_venv $(VENV) "$$py"
	fi
	install_requirements $(VENV)
	install_extras $(VENV)

build: venv ## Build the extension in release mode into .venv (maturin develop)
	@# maturin rewrites the module in place, and a program running the old one
	@# (a notebook kernel, a test run) dies of SIGBUS when its mapped file
	@# changes under it: unlinked first, the old file lives on for them.
	so=$$("$(VPY)" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
	rm -f "python/leakguard/_leakguard$$so"
	VIRTUAL_ENV="$(CURDIR)/$(VENV)" "$(VENV)/bin/maturin" develop --release

run: build ## Build, then hunt the leaks in examples/leaky_service.py and print the report (ARGS=...)
	@"$(VPY)" examples/leaky_service.py $(ARGS)

test-rust: ## cargo test: the pure Rust core, no Python involved
	@cargo test

lint: build ## All lints: rustfmt, clippy (with and without Python), ruff, stubtest, mypy
	@$(SH_LIB)
	$(LINT_STEPS)
	finish

pytest: build ## Run pytest against the build in .venv (PYTEST_ARGS=... passed on)
	@"$(VPY)" -m pytest $(PYTEST_ARGS)

test: build ## Build, cargo test, lints, pytest, then the matrix (MATRIX=0 skips it)
	@$(SH_LIB)
	start=$$SECONDS
	step cargo test
	$(LINT_STEPS)
	step "$(VPY)" -m pytest $(PYTEST_ARGS)
	if [ "$(MATRIX)" != 0 ]; then
		step $(MAKE) matrix MATRIX_SKIP="$$(py_minor "$(VPY)")" PYTEST_ARGS="$(PYTEST_ARGS)"
	fi
	echo "test: $$((SECONDS - start))s after the build"
	finish

matrix: venv ## Build and pytest on every installed CPython 3.9-3.13 (.venv-3.X)
	@$(SH_LIB)
	for v in $(MATRIX_PYTHONS); do
		if [[ " $(MATRIX_SKIP) " == *" $$v "* ]]; then
			echo "==> CPython $$v: left to .venv (already tested)"
			continue
		fi
		step $(MAKE) matrix-$$v PYTEST_ARGS="$(PYTEST_ARGS)"
	done
	finish

matrix-%: venv ## Build and pytest on one CPython (e.g. make matrix-3.13)
	@$(SH_LIB)
	v=$*
	if ! py=$$(find_python $$v); then
		echo "skipping CPython $$v: not installed"
		exit 0
	fi
	dir=.venv-$$v
	# A venv whose interpreter went away (or changed) is rebuilt, not patched.
	if [ -e "$$dir/pyvenv.cfg" ] && [ "$$(py_minor "$$dir/bin/python")" != "$$v" ]; then rm -rf "$$dir"; fi
	[ -e "$$dir/pyvenv.cfg" ] || make_venv "$$dir" "$$py"
	install_requirements "$$dir"
	# Its own target dir: the build depends on the interpreter, and sharing one
	# would rebuild pyo3 from scratch on every switch.
	target="$(CURDIR)/target/py$$v"
	rm -rf "$$target/wheels"
	echo "==> CPython $$v: building a wheel for $$py"
	env $(MATRIX_CARGO_ENV) CARGO_TARGET_DIR="$$target" \
		"$(VENV)/bin/maturin" build --release --interpreter "$$dir/bin/python" --out "$$target/wheels"
	# The wheel, not an editable install: the tests then import what we ship.
	"$$dir/bin/python" -m pip install -q --force-reinstall --no-deps "$$target"/wheels/*.whl
	echo "==> CPython $$v: pytest"
	"$$dir/bin/python" -m pytest $(PYTEST_ARGS)

bench: build ## Build, install the tracers compared with (memray), run benches/run.py (ARGS=...)
	@"$(VPY)" -m pip install --quiet -r benches/requirements.txt
	"$(VPY)" benches/run.py $(ARGS)

fmt: venv ## Format: rustfmt, ruff format, and ruff's import sorting
	@cargo fmt --all
	"$(VENV)/bin/ruff" check --select I --fix --quiet .
	"$(VENV)/bin/ruff" format .

clean: ## Remove build artefacts and caches (keeps the venvs)
	@rm -rf target dist build python/leakguard/*.so .pytest_cache .mypy_cache .ruff_cache
	find . \( -path ./.git -o -path ./.venv -o -path './.venv-*' \) -prune \
		-o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## clean, and remove the venvs (.venv, .venv-3.X)
	@rm -rf $(VENV) .venv-*
