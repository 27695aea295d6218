#!/bin/sh
# Re-record the program traces under traces/aio/ from real clients on 127.0.0.1 (simnet record):
# the asyncio-streams app and the aiohttp app of tests/record/programs, driven by curl and
# Python's http.client, and the streams app under wrk (2 keep-alive connections, stopped after
# 200 responses so the trace stays small). Replay passes the same port: `simnet replay T --
# python APP PORT`. tests/record/test_committed_program_traces.py replays each exactly and
# tests/record/test_program_resim.py re-simulates their clients (`simnet replay --sim`).
#
#   traces/aio/record.sh                 # all of them (make traces runs this)
#   traces/aio/record.sh streams_wrk     # only the ones named
#
# Needs curl and wrk (apt-get install -y curl wrk) and the repository's .venv.
set -eu
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
PROGRAMS=tests/record/programs
MAX_BYTES=$((1024 * 1024))
export PYTHONHASHSEED=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

curl_clients() {  # after the first curl: two requests on one connection, then http.client
    port=$1
    curl -s -o /dev/null "http://127.0.0.1:$port/" "http://127.0.0.1:$port/again"        # keep-alive
    "$PY" -c "import http.client as h; c=h.HTTPConnection('127.0.0.1',$port,timeout=10); c.request('GET','/'); c.getresponse().read(); c.close()"
}

wrk_clients() {  # wrk has no request limit: its response() hook stops the thread (-t1: all of it)
    cat >"$TMP/limit.lua" <<'EOF'
local done = 0
response = function(status, headers, body)
  done = done + 1
  if done >= 200 then wrk.thread:stop() end
end
EOF
    wrk -t1 -c2 -d1s --timeout 5s -s "$TMP/limit.lua" "http://127.0.0.1:$1/" > /dev/null
}

record() {  # record NAME PROGRAM PORT CLIENTS: run it under simnet record, drive it, stop it
    name=$1 program=$2 port=$3 clients=$4
    "$PY" -m simnet.cli record --trace "traces/aio/$name.jsonl" -- python "$PROGRAMS/$program" "$port" > /dev/null &
    pid=$!
    # Wait for the port: the first GET that is answered is the trace's first client.
    for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
    "$clients" "$port"
    # SIGTERM: a background job of a non-interactive shell starts with SIGINT ignored. The trace
    # ends with the Signal record; replay reports the program killed there, as recorded.
    kill -TERM $pid
    wait $pid || true
    size=$(wc -c < "traces/aio/$name.jsonl")
    [ "$size" -lt "$MAX_BYTES" ] || { echo "record.sh: traces/aio/$name.jsonl is $size bytes (limit 1 MB)" >&2; exit 1; }
    echo "traces/aio/$name.jsonl: $size bytes"
}

wanted() { [ $# -eq 0 ] || case " $* " in *" $NAME "*) true ;; *) false ;; esac; }

for spec in "streams_curl streams_app.py 18801 curl_clients" "aiohttp_curl aiohttp_app.py 18802 curl_clients" \
            "streams_wrk streams_app.py 18803 wrk_clients"; do
    NAME=${spec%% *}
    if wanted "$@"; then
        # shellcheck disable=SC2086
        record $spec
    fi
done
