# Two commands do all the set-up on a fresh machine:
#   make demo   -- runs sentinel on its embedded default (a real local Triton, scripted faults)
#   make test   -- runs the whole test suite (lint, types, unit, real Triton/Prometheus/Alertmanager)
# And, as root on Debian with mmdebstrap umoci skopeo podman runc installed:
#   make image       -- builds the OCI image without Docker (build/image/; deploy/image/build.sh)
#   make image-test  -- runs that image against a real local Triton (tests/ops/test_image.py)
# Both create .venv and install what they need; `make test` also installs the Debian
# packages the tests use (promtool, prometheus, alertmanager) when run as root.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean image image-test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[demo,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sentinel demo

test: $(STAMP)
	bash tools/install-system-deps.sh
	$(MAKE) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check sentinel tests bench examples tools
	$(BIN)/ruff format --check sentinel tests bench examples tools
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/detector_cost.py
	$(BIN)/python bench/detectors.py
	$(BIN)/python bench/time_to_mitigate.py

image: $(STAMP)
	PYTHON=$(BIN)/python sh deploy/image/build.sh

image-test: image
	TEST_SENTINEL_IMAGE=1 TEST_SENTINEL_IMAGE_OCI=$(CURDIR)/build/image/oci:$$($(BIN)/python -c \
	  'import sentinel; print(sentinel.__version__)') $(BIN)/pytest -q -p no:cacheprovider \
	  tests/ops/test_image.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
