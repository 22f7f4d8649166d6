# lineinspect — `make run` starts the whole service on this machine, `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install install-dev browser tools demo-frames clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Runtime install: onnxruntime, no torch.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

# Test install adds the training extra (torch 2.13.0 CPU build from the local wheel cache)
# because the architecture tests export PyTorch models to ONNX.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[train,test,bench]'
	touch $(STAMP) $(VENV)/.installed-dev

install: $(STAMP)
install-dev: $(VENV)/.installed-dev

# FPS: frame rate requested from the (emulated) camera. Empty (the default): measured at
# start-up, a rate this machine inspects (deploy/pace.py); 30 = the acA1300-30gm's maximum.
FPS ?=
# WORKERS: inference worker processes (empty: LINEINSPECT_INFERENCE_WORKERS, else one per core).
WORKERS ?=
run: $(STAMP)
	$(if $(FPS),LINEINSPECT_FRAME_RATE=$(FPS) )$(if $(WORKERS),LINEINSPECT_INFERENCE_WORKERS=$(WORKERS) )$(BIN)/lineinspect run

# The QA UI tests (tests/ui) drive Debian's chromium through chromium-driver; no browser
# download is needed. Checked on every run (cheap), installed with apt when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

# The real tools the deployment tests run (issue 17.8): promtool and prometheus (alert-rule
# unit tests, a real Prometheus scraping the service) and a compose client for `config`
# (Debian 12 packages only docker-compose v1; no engine is installed). Installed with apt
# when missing, like the browser.
tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq prometheus; }
	@docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    docker-compose; }

test: $(VENV)/.installed-dev browser tools
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

demo-frames: $(VENV)/.installed-dev
	$(BIN)/python deploy/demo/make_demo_frames.py

clean:
	rm -rf $(VENV) var
