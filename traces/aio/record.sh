#!/bin/sh
# Re-record the program traces under traces/aio/ from real clients on 127.0.0.1 (simnet record):
# the asyncio-streams app and the aiohttp app of tests/record/programs, driven by curl and
# Python's http.client. Replay passes the same port: `simnet replay T -- python APP PORT`. tests/record/test_committed_program_traces.py replays each exactly.
set -eu
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
PROGRAMS=tests/record/programs
export PYTHONHASHSEED=0

record() {  # record NAME PROGRAM PORT: run it under simnet record, drive it, stop it with SIGINT
    name=$1 program=$2 port=$3
    "$PY" -m simnet.cli record --trace "traces/aio/$name.jsonl" -- python "$PROGRAMS/$program" "$port" > /dev/null &
    pid=$!
    for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
    curl -s -o /dev/null "http://127.0.0.1:$port/" "http://127.0.0.1:$port/again"        # keep-alive
    "$PY" -c "import http.client as h; c=h.HTTPConnection('127.0.0.1',$port,timeout=10); c.request('GET','/'); c.getresponse().read(); c.close()"
    # SIGTERM: a background job of a non-interactive shell starts with SIGINT ignored. The trace
    # ends with the Signal record; replay reports the program killed there, as recorded.
    kill -TERM $pid
    wait $pid || true
}

record streams_curl streams_app.py 18801
record aiohttp_curl aiohttp_app.py 18802
