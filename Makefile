# Two commands: `make demo` (train and evaluate on the generated demo data) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
export PATH := $(abspath $(BIN)):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv demo test test-fast test-lite test-cluster cluster-up cluster-down lint dry-run browser bench bench-peers clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[workflow,dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	@test -d data/demo || $(BIN)/artdet demo-data data/demo --config config.yaml
	$(BIN)/snakemake --cores $(CORES) --resources gpu=1
	$(BIN)/snakemake --report results/report.html
	@$(BIN)/python -m artdet.evaluate.summary config.yaml

test: venv
	$(BIN)/python -m pytest -v -rs

# A single-node SLURM cluster on this machine (root or sudo; installs Debian's slurm-wlm and
# munge when absent); tests/cluster/ holds its slurm.conf and the script.
cluster-up:
	bash tests/cluster/cluster.sh up

cluster-down:
	bash tests/cluster/cluster.sh down

# The workflow through profiles/slurm on that cluster, against a local run; the cluster is
# stopped whether the test passes or not.
test-cluster: venv
	$(MAKE) cluster-up
	$(BIN)/python -m pytest -v -rs tests/cluster/test_slurm.py; status=$$?; $(MAKE) cluster-down; exit $$status

# The light install (`pip install .`: TFLite through LiteRT, detect, serve; no TensorFlow) in its own
# virtualenv, detecting with a small int8 file that the full install exports first.
LITE ?= .venv-lite
test-lite: venv
	rm -rf $(LITE)
	$(PYTHON) -m venv $(LITE)
	$(LITE)/bin/python -m pip install --quiet --upgrade pip
	$(LITE)/bin/python -m pip install --quiet -e .
	$(BIN)/python tests/lite/export_model.py .test/lite
	$(LITE)/bin/python tests/lite/check_lite.py .test/lite

test-fast: venv
	$(BIN)/python -m pytest -v -m "not slow"

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports
	$(BIN)/snakefmt --check Snakefile rules
	@$(BIN)/artdet demo-data .test/demo --count 4 > /dev/null
	$(BIN)/snakemake --lint --cores 1 -n --config dataset=.test/demo

# Every benchmark under bench/ (JSON in bench/results/), then BENCHMARKS.md.
BENCHES := data_prep dag train_speed inference serve accuracy anchors int8_scores classify review
bench: venv
	cd bench && for name in $(BENCHES); do ../$(BIN)/python $$name.py || exit 1; done
	cd bench && ../$(BIN)/python report.py

# Optional: Ultralytics YOLOv8n trained and timed beside our recipe on the same data, budget and
# machine (bench/peers.py). Ultralytics and PyTorch live in their own virtualenv, never in artdet's
# (PyPI's torch brings CUDA libraries: several GB). BUDGET=12m by default.
PEERS ?= .venv-peers
BUDGET ?= 12m
$(PEERS)/.installed:
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS)/bin/python -m pip install --quiet 'ultralytics==8.4.190'
	touch $@

bench-peers: venv $(PEERS)/.installed
	cd bench && ../$(BIN)/python peers.py --peer-python ../$(PEERS)/bin/python --budget $(BUDGET)
	cd bench && ../$(BIN)/python report.py

# Debian's Chromium, for the web page test (tests/test_web.py); needs root or sudo.
browser:
	@command -v chromium > /dev/null || { \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium > /dev/null; }
	@chromium --version

dry-run: venv
	$(BIN)/snakemake -n --cores $(CORES) --resources gpu=1

clean:
	rm -rf results .snakemake
