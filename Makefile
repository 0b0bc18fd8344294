# Two commands on a fresh machine with Python 3.11:
#   make run        set up .venv and run the main job on the bundled sample
#   make test       set up .venv and run the test suite (tests marked slow left out)
#   make test-all   every test, the slow ones too (what CI runs)
VENV ?= .venv
PYTHON ?= python3
CORES ?= all
TARGET ?= all
BIN = $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test test-all clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[cpu,slurm,test]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/snakemake --cores $(CORES) --show-failed-logs $(TARGET)

test: $(BIN)/.installed
	$(BIN)/pytest

test-all: $(BIN)/.installed
	$(BIN)/pytest -m ''

clean:
	rm -rf results models logs .snakemake
