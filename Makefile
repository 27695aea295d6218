# Every target works on a fresh machine: the venv is created and the project installed on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/simnet demo
	@echo
	$(BIN)/simnet run --app http --clients 200 --requests 50 --seed 7 --latency 1ms --rcvbuf 4096 --sndbuf 4096

test: $(STAMP)
	$(BIN)/python -m pytest -q
	tests/aio/other_pythons.sh

bench: $(STAMP)
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
