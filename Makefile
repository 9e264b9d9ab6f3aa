# One command to set everything up and run the main job, one to set up and run the tests:
#   make demo      closed-loop Hopper demo (ROS 2 planner + MuJoCo bridge) on the shipped model
#   make test      style check + full test suite
# Both create .venv on first use (idempotent) with only Python 3.11 needed on the machine.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EPISODES ?= 1
DEMO_ARGS ?=

# DDS discovery stays on loopback; a domain of our own unless the caller picked one.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= 42

.PHONY: setup demo test lint benchmark clean

setup: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# Pinned: the local CPU wheel. An unpinned torch would pull gigabytes of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[ros-wheels,test,data,fast]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/diffuser-ros-demo --episodes $(EPISODES) $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check diffuser_ros test launch setup.py

test: $(STAMP) lint
	$(PY) -m pytest -q

benchmark: $(STAMP)
	$(VENV)/bin/diffuser-ros-benchmark

clean:
	rm -rf $(VENV) build install log *.egg-info
