# Two commands on a fresh machine with Python 3.11:
#   make run        set up .venv and run the main job on the bundled sample
#   make test       set up .venv and run the test suite (tests marked slow left out)
#   make test-all   every test CI runs, the slow ones too
#   make test-long  the tests too long for CI: SLURM whole DAG and multi-node, envs/, container
#   make profiles   link profiles/{local,slurm,cloud} where `snakemake --profile NAME` looks
VENV ?= .venv
PYTHON ?= python3
CORES ?= all
# The extras `make` installs; the container image takes cpu,slurm,s3 (no test tools).
EXTRAS ?= cpu,slurm,test
TARGET ?= all
# Test processes; each test file runs whole in one, so its services and fixtures are built once.
TEST_WORKERS ?= 2
BIN = $(VENV)/bin
PARALLEL_PYTEST = $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile
# Snakemake finds `--profile NAME` in ./NAME, then in the user's and the site's config folders.
PROFILE_HOME ?= $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake
PROFILES = local slurm cloud
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run test test-all test-long clean profiles

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

setup: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) --show-failed-logs $(TARGET)

test: $(BIN)/.installed
	$(PARALLEL_PYTEST)

test-all: $(BIN)/.installed
	$(PARALLEL_PYTEST) -m 'not long and not container'

test-long: $(BIN)/.installed
	$(BIN)/pytest -m 'long or container'

# Symbolic links, so that editing profiles/ changes what `--profile NAME` uses; a folder of that
# name that is not such a link is the user's own profile and is left alone (an error).
profiles:
	mkdir -p $(PROFILE_HOME)
	@for name in $(PROFILES); do \
		target=$(PROFILE_HOME)/$$name; \
		if [ -e $$target ] && [ ! -L $$target ]; then \
			echo "$$target exists and is not a link to this project's profile: move it away" >&2; \
			exit 1; \
		fi; \
		ln -sfn $(CURDIR)/profiles/$$name $$target && echo "$$target -> profiles/$$name"; \
	done

clean:
	rm -rf results models logs .snakemake
