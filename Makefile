# TxFM — every target installs what it needs (venv, requirements, apt packages).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PY_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-stamp
SHARED_DATA ?= ../shared/data
DEMO_CORPUS := corpora/demo
DEMO_RUN := runs/demo
DEMO_BUNDLE := bundles/demo
REFERENCES := cache/references
PORT ?= 8501

.PHONY: help venv browser test test-all demo bench results app clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv and install the pinned requirements

$(STAMP): requirements.txt
	test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

browser: ## install Debian's Chromium for the real-browser test (apt)
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: venv browser ## run the default test suite (fast; no GPU; no slow markers)
	$(PY) -m pytest -q -m "not slow and not gpu" tests

test-all: venv browser ## run every test, slow ones included
	$(PY) -m pytest -q tests

demo: venv ## train on the embedded demo corpus, precompute a bundle, start the app
	$(PY) -m txfm train --corpus $(DEMO_CORPUS) --preset tiny --out $(DEMO_RUN) --epochs 1

bench: venv ## benchmarks: write docs/benchmarks.md tables
	$(PY) -m txfm bench --out docs/bench-txfm.md

results: venv ## train on ../shared/data, precompute TxFM and PCA, write docs/results.md
	@echo "make results is added by the precompute issue"; exit 2

app: venv ## start the app on ./bundles
	$(PY) -m streamlit run app/main.py --server.address 127.0.0.1 --server.port $(PORT) -- --bundles bundles

clean: ## remove outputs (runs, bundles, corpora, caches) but keep the venv
	rm -rf runs bundles corpora results bench-out .pytest_cache
