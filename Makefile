# canopygaps: set-up, tests, demo, lint, benchmarks, packaging.
# Every target installs what it needs on a fresh Debian 12 machine and is quick the second time.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
APT_PACKAGES := qgis python3-qgis qgis-providers python3-gdal gdal-bin python3-rasterio python3-scipy python3-matplotlib python3-venv
STAMP_APT := $(VENV)/.apt-stamp
STAMP_PIP := $(VENV)/.pip-stamp
export OMP_NUM_THREADS ?= 2
export QT_QPA_PLATFORM ?= offscreen

.PHONY: help setup test test-all lint format demo bench gpu-check package train-default crossval docker-lint clean

help:
	@echo "make demo    - set up, then run the whole pipeline on an embedded scene"
	@echo "make test    - set up, lint, then run the test suite"
	@echo "make lint    - ruff + mypy on engine/ and chm_plugin/"
	@echo "make bench   - benchmarks -> bench/results.json, bench/results.md"
	@echo "make gpu-check - the CUDA path in one run -> bench/work/gpu_check.json (CPU plan without a GPU)"
	@echo "make package - installable QGIS plugin zip in dist/"
	@echo "make crossval - leave-one-site-out cross-validation -> build/crossval/crossval.md"
	@echo "make train-default - rebuild the default model and its card (needs ../shared/data)"

# --- set-up -----------------------------------------------------------------------------------
$(STAMP_APT):
	@if ! /usr/bin/python3 -c "import qgis.core, rasterio, osgeo.gdal, scipy, matplotlib, ensurepip" 2>/dev/null \
	   || ! command -v gdalinfo >/dev/null || [ ! -x /usr/bin/qgis_process.bin ]; then \
	  echo ">> installing QGIS, GDAL and rasterio from Debian (about a minute)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi
	@/usr/bin/python3 -m venv --system-site-packages $(VENV)
	@touch $@

$(STAMP_PIP): $(STAMP_APT) requirements.txt requirements-dev.txt pyproject.toml
	@echo ">> installing Python dependencies into $(VENV)"
	@$(PIP) install -q --disable-pip-version-check -r requirements-dev.txt
	@$(PIP) install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

setup: $(STAMP_PIP)

# --- quality ----------------------------------------------------------------------------------
lint: setup
	$(VENV)/bin/ruff check engine chm_plugin tests bench scripts
	$(VENV)/bin/ruff format --check engine chm_plugin tests bench scripts
	$(VENV)/bin/mypy engine chm_plugin

format: setup
	$(VENV)/bin/ruff format engine chm_plugin tests bench scripts
	$(VENV)/bin/ruff check --fix engine chm_plugin tests bench scripts

docker-lint: setup
	$(VENV)/bin/hadolint -c docker/.hadolint.yaml docker/Dockerfile docker/Dockerfile.cpu

# --- Docker images (docker/README.md) ---------------------------------------------------------
.PHONY: docker-build docker-build-cpu docker-run docker-test docker-clean
DOCKER_ARGS ?= diagnostics
docker-build:
	bash docker/build.sh gpu

docker-build-cpu:
	bash docker/build.sh cpu

docker-run:
	bash docker/run.sh $(DOCKER_ARGS)

docker-test: docker-lint
	$(PY) -m pytest -q tests/docker
	@if docker info >/dev/null 2>&1 && docker image inspect canopygaps:cpu >/dev/null 2>&1; then \
	  bash docker/smoke.sh canopygaps:cpu; \
	else echo "docker-test: no Docker engine or no canopygaps:cpu image: image smoke test skipped"; fi

docker-clean:
	bash docker/clean.sh

test: lint
	$(PY) -m pytest -q

test-all: lint
	RUN_SLOW=1 $(PY) -m pytest -q

# --- pipeline ---------------------------------------------------------------------------------
demo: setup
	@bash scripts/demo.sh

bench: setup
	$(PY) -m bench.run

# One run of the CUDA path (bench/README.md "GPU check"); on a lent GPU machine run
# 'bash bench/gpu_check.sh' itself (no set-up there). GPU_CHECK_ARGS: e.g. --smoke, --cpu.
gpu-check: setup
	PYTHON=$(PY) bash bench/gpu_check.sh $(GPU_CHECK_ARGS)

package: setup
	$(PY) scripts/package_plugin.py

train-default: setup
	bash scripts/train_default.sh

crossval: setup
	$(PY) -m engine crossval --config resources/configs/crossval.yaml

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache demo-output
