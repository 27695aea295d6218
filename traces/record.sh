#!/usr/bin/env bash
# Re-record the live traces in traces/: `realnet serve --record` driven by real clients.
#
# Each scenario starts its own server on a free port (so each trace is one client story), runs
# the client, stops the server with SIGTERM (exit status 0 required), and the script ends by
# replaying every trace exactly and checking that each stays under 1 MB. The clients are curl,
# wrk and Python's http.client -- HTTP implementations nobody here wrote -- plus small raw-socket
# snippets for what no stock client does on purpose: pipelining, a reset mid-response, and a
# half-close. tests/realnet/test_committed_traces.py replays the committed results.
#
#   traces/record.sh            # or: make traces
#
# Needs curl and wrk (apt-get install -y curl wrk) and the repository's .venv (make test makes it).
set -euo pipefail

cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=traces
MAX_BYTES=$((1024 * 1024))

die() { echo "record.sh: $*" >&2; exit 1; }
[ -x "$PY" ] || die "no $PY; run 'make test' once to create the virtualenv"
for tool in curl wrk; do
  command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install -y curl wrk)"
done

TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID" || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# start NAME APP [realnet serve options...]: serve, recording to traces/NAME.jsonl; sets PORT, URL.
start() {
  local name=$1 app=$2
  shift 2
  CURRENT=$name
  "$PY" -m realnet serve --app "$app" --port 0 --record "$OUT/$name.jsonl" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  SERVER_PID=$!
  local i
  for i in $(seq 150); do
    if grep -q '^realnet: serving ' "$TMP/$name.out"; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "$name: the server exited: $(cat "$TMP/$name.err")"
    sleep 0.1
  done
  PORT=$(sed -n 's|^realnet: serving .* on http://[0-9.]*:\([0-9]*\) .*|\1|p' "$TMP/$name.out")
  [ -n "$PORT" ] || die "$name: the server did not start within 15 s"
  URL="http://127.0.0.1:$PORT"
}

# stop: SIGTERM, and the server must exit 0 within 15 s.
stop() {
  kill -TERM "$SERVER_PID"
  local i rc
  for i in $(seq 150); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  rc=0
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=""
  [ "$rc" -eq 0 ] || die "$CURRENT: the server exited with $rc: $(cat "$TMP/$CURRENT.err")"
  echo "$CURRENT: $(tail -n 1 "$TMP/$CURRENT.out")"
}

# -- curl: three URLs over one keep-alive connection ----------------------------------------------
start curl_keepalive http
curl -sS --max-time 10 "$URL/" "$URL/bytes/5000" "$URL/nowhere" >/dev/null
stop

# -- curl: POST bodies, the larger one with `Expect: 100-continue` (curl waits for our 100) ------
start curl_post http
body=$(curl -sSf --max-time 10 --data-binary 'hello from curl' "$URL/echo")
[ "$body" = "hello from curl" ] || die "curl_post: echoed $body"
body=$(head -c 3000 /dev/zero | tr '\0' 'x' | curl -sSf --max-time 10 -H 'Expect: 100-continue' --data-binary @- "$URL/echo")
[ "${#body}" -eq 3000 ] || die "curl_post: echoed ${#body} bytes, not 3000"
stop

# -- Python's http.client: keep-alive GET, POST, a 100 kB response, HEAD, 404 --------------------
start http_client http
"$PY" - "$PORT" <<'EOF'
import http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
for method, path, body in [("GET", "/", None), ("POST", "/echo", b"posted by http.client"),
                           ("GET", "/bytes/100000", None), ("HEAD", "/bytes/10", None),
                           ("GET", "/missing", None)]:
    conn.request(method, path, body=body)
    r = conn.getresponse()
    r.read()
conn.close()
EOF
stop

# -- wrk: 4 keep-alive connections, stopped after 300 responses so the trace stays small ----------
# wrk has no request limit; its per-thread response() hook stops the thread instead (-t1: all).
cat >"$TMP/limit.lua" <<'EOF'
local done = 0
response = function(status, headers, body)
  done = done + 1
  if done >= 300 then wrk.thread:stop() end
end
EOF
start wrk http
wrk -t1 -c4 -d2s --timeout 5s -s "$TMP/limit.lua" "$URL/bytes/100" >"$TMP/wrk.txt"
stop
start wrk_et http --edge-triggered
wrk -t1 -c4 -d2s --timeout 5s -s "$TMP/limit.lua" "$URL/bytes/100" >"$TMP/wrk_et.txt"
stop

# -- pipelining: eight requests in one send over a raw socket -------------------------------------
start pipelined http
"$PY" - "$PORT" <<'EOF'
import socket, sys
reqs = b"".join(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in (10, 1000, 20000, 0, 64, 100000, 7))
reqs += b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlast"
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as s:
    s.sendall(reqs)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
assert data.count(b"HTTP/1.1 200 OK") == 8 and data.endswith(b"last"), data[-200:]
EOF
stop

# -- a client that resets mid-response: SO_LINGER (1, 0) and close after reading a little --------
# Small buffers on both sides keep what the server manages to send small, and a small output cap
# keeps the trace small: every Send record holds all the pending output it offered, so a slow
# reader's retries repeat up to --output-cap bytes each (256k by default).
start reset_mid_response http --sndbuf 16k --output-cap 16k
"$PY" - "$PORT" <<'EOF'
import socket, struct, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
s.settimeout(10)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /bytes/1000000 HTTP/1.1\r\nHost: x\r\n\r\n")
got = 0
while got < 20000:
    got += len(s.recv(4096))
time.sleep(0.2)  # the server fills our window and waits for EPOLLOUT
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()  # RST
time.sleep(0.2)
EOF
stop

# -- half-close: the request, then shutdown(SHUT_WR); the response must still come whole ---------
start half_close http
"$PY" - "$PORT" <<'EOF'
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as s:
    s.sendall(b"GET /bytes/30000 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
from simnet.server.apps.http import pattern
assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"\r\n\r\n" + pattern(0, 30000)), data[-80:]
EOF
stop

# -- echo: a line back, then a half-close ---------------------------------------------------------
start echo_half_close echo
"$PY" - "$PORT" <<'EOF'
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as s:
    s.sendall(b"hello, echo\n")
    assert s.recv(100) == b"hello, echo\n"
    s.sendall(b"x" * 50000)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
assert data == b"x" * 50000
EOF
stop

# -- every trace replays exactly, and stays small ------------------------------------------------
"$PY" - "$MAX_BYTES" "$OUT"/*.jsonl <<'EOF'
import os, sys
from simnet.drivers.replay import replay_exact
limit, paths = int(sys.argv[1]), sys.argv[2:]
bad = 0
for path in paths:
    report = replay_exact(path)
    size = os.path.getsize(path)
    ok = report.ok and report.exited and size < limit
    bad += not ok
    print(f"{'ok ' if ok else 'BAD'} {size:>8} bytes  {report.format().splitlines()[0]}")
sys.exit(1 if bad else 0)
EOF
