# Every target creates .venv and installs cryotune in one pip resolve, pinned by constraints.txt,
# when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= cryotune-demo

.PHONY: install test check lint demo bench clean lock docker-test slurm-test

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,dashboard]'
	touch $(STAMP)

install: $(STAMP)

# A throwaway PostgreSQL server on loopback backs the cluster-store tests; it is stopped (and its
# folder removed) when pytest ends, passing or not.
test: $(STAMP)
	$(BIN)/ruff check .
	bash scripts/postgres.sh run "$$(mktemp -d)" -- $(BIN)/python -m pytest -q

# The inner loop: ruff and every test that starts no process (no cryotune command, Ray runtime,
# server or database), on both cores; `make test` runs everything.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo: $(STAMP)
	bash scripts/demo.sh $(DEMO_DIR)

# Every benchmark (about 1 h 30 min on 2 cores: scale took 48 min, the depth time to quality 14); `make bench QUICK=1`: every
# benchmark's tiny version in under 10 minutes (results in bench/results/quick/, not tabled).
bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick)

# Outside `make test` (long; root; installs Debian packages): build the image and run every role
# of a cluster from it on this machine (scripts/docker-test.sh), then through docker-compose
# (scripts/compose-stage.sh). Heavy runs take /tmp/cryotune-heavy.lock so they never overlap.
docker-test:
	flock /tmp/cryotune-heavy.lock bash scripts/docker-test.sh

# A one-node Slurm (slurm-wlm, munge) on this machine runs slurm/cryotune-sweep.sbatch.
slurm-test: $(STAMP)
	flock /tmp/cryotune-heavy.lock bash scripts/slurm-test.sh

# Resolve pyproject.toml's ranges afresh in a throwaway venv and pin what resolved.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q -e '.[dev,dashboard]'
	{ sed -n '1,3p' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable \
	  | grep -v '^cryotune'; } > constraints.txt.new && mv constraints.txt.new constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
