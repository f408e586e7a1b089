# Every target sets up its own virtual environment on first use, so a fresh clone
# needs nothing but python3 (>= 3.10) and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast lint format bench demo minisuite docs docs-figures clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The inner loop: everything but the tests marked slow. `make test` (CI, README) runs all.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The documentation site, built strictly (a broken link or a missing page fails) into site/.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Redraws the figures the Figures page shows, from the shipped data (committed PNGs).
docs-figures: $(STAMP)
	$(BIN)/massdyn figures --out build/docs-figures
	$(BIN)/massdyn figures --by architecture --out build/docs-seed-figures
	cp build/docs-seed-figures/fig11_seed_bands.png build/docs-figures/
	mkdir -p docs/figures && cp build/docs-figures/*.png docs/figures/

demo: $(STAMP)
	$(BIN)/massdyn demo --out demo-output

# Regenerates data/minisuite from nothing (corpus download, tokenizer, training of every
# member, live measurements, fits). About 88 minutes on 2 CPU cores; resumable.
minisuite: $(STAMP)
	$(BIN)/massdyn minisuite --out data/minisuite --work minisuite-work --jobs 2 --threads 1

clean:
	rm -rf $(VENV) demo-output .pytest_cache site build
