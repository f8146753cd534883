# Two commands do all the set-up on a fresh machine (they create .venv on first use):
#   make demo   the main job: render -> mix -> train -> evaluate on shipped data and a tiny model
#   make test   lint, type-check, the whole test suite, and loading our data with the oldest datasets
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.instructkit-installed
# A small separate env with the oldest datasets we claim (cached inside .venv; see `compat`).
OLDEST := $(VENV)/datasets-oldest
OLDEST_STAMP := $(OLDEST)/.installed

.PHONY: demo demo-real test lint typecheck unit compat bench clean

$(STAMP): pyproject.toml plugins/instructkit-peft-extras/pyproject.toml scripts/bootstrap.sh scripts/torch_plan.py
	bash scripts/bootstrap.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/instructkit demo --out demo-output --overwrite

# the same story on a real instruct model (SmolLM2-135M-Instruct from the package index)
demo-real: $(STAMP)
	$(BIN)/instructkit demo --model smollm2-135m-instruct --out demo-real --overwrite

test: lint typecheck unit compat

lint: $(STAMP)
	$(BIN)/ruff check instructkit tests plugins benchmarks examples scripts
	$(BIN)/ruff format --check instructkit tests plugins benchmarks examples scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

$(OLDEST_STAMP): scripts/datasets-oldest.txt
	rm -rf $(OLDEST)
	$${PYTHON:-python3} -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/datasets-oldest.txt
	touch $(OLDEST_STAMP)

# load_from_disk of a freshly rendered and mixed directory under the oldest supported datasets
compat: $(STAMP) $(OLDEST_STAMP)
	$(BIN)/python scripts/check_datasets_compat.py --python $(OLDEST)/bin/python

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) demo-output demo-real build dist .pytest_cache .mypy_cache .ruff_cache
