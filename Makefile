# Every target works on a fresh machine: the venv is created and the project installed on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The modules setup.py compiles with mypyc (simnet/_build.py). An editable install runs their
# compiled form, so an edit to one of them is only seen after a rebuild: BUILT is remade (setup.py
# again, ~1 min) whenever one of them is newer.
HOT := $(shell sed -n 's/^    "\(simnet\/.*\.py\)",$$/\1/p' simnet/_build.py)
BUILT := $(VENV)/.compiled

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	SIMNET_PURE_PYTHON=1 $(BIN)/pip install --quiet -e '.[test]'  # the dependencies; BUILT compiles
	touch $(STAMP)

$(BUILT): $(STAMP) setup.py simnet/_build.py $(HOT)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(BUILT)

run: $(BUILT)
	$(BIN)/simnet demo
	@echo
	$(BIN)/simnet run --app http --clients 200 --requests 50 --seed 7 --latency 1ms --rcvbuf 4096 --sndbuf 4096

# The suite twice: on the compiled modules, then on their Python sources (the fallback where no
# compiler is at hand), each asserting which it ran (tests/test_build.py).
test: $(BUILT)
	SIMNET_EXPECT_COMPILED=1 $(BIN)/python -m pytest -q
	SIMNET_PURE_PYTHON=1 SIMNET_EXPECT_COMPILED=0 $(BIN)/python -m pytest -q -p no:cacheprovider
	tests/aio/other_pythons.sh

bench: $(BUILT)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .venv-3.* build *.egg-info

# Re-record traces/*.jsonl live: realnet serve driven by curl, wrk, http.client and raw sockets
# (needs curl and wrk), and traces/aio/*.jsonl: asyncio programs under simnet record, driven by
# curl, http.client and wrk. tests/realnet/test_committed_traces.py and tests/record replay them.
.PHONY: traces
traces: $(STAMP)
	bash traces/record.sh
	sh traces/aio/record.sh
