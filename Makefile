# The two commands of the quick start. Each creates .venv when missing and installs
# what it needs; torch comes from `pip install torch==2.13.0` (a CPU build).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_output

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'setuptools>=70.1'

$(STAMP): pyproject.toml tests/interop-requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[model,label,test]'
	$(BIN)/pip install --quiet --no-deps -r tests/interop-requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh $(DEMO_DIR) $(BIN)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) $(DEMO_DIR)
