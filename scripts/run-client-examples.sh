#!/usr/bin/env bash
# Run every client in examples/clients/ against a real `facelens serve` and check each gets a
# face: the server starts on a free port with a temporary data dir, prints its first key (read
# from its stdout), and each example calls /faceDetect/index with a committed test image.
#
#   scripts/run-client-examples.sh            # builds target/debug/facelens if needed
#   FACELENS_BIN=target/release/facelens scripts/run-client-examples.sh
#
# Needs curl, python3 (requests goes into a venv under target/) and node >= 18. The image is
# the committed public-domain portrait test-data/astronaut.jpg (test-data/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

image="test-data/astronaut.jpg"
[ -f "$image" ] || { echo "run-client-examples: $image is missing"; exit 1; }

bin="${FACELENS_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --quiet -p facelens
  bin="${CARGO_TARGET_DIR:-target}/debug/facelens"
fi

venv="${FACELENS_CLIENTS_VENV:-target/clients-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import requests" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "requests==2.34.2"
fi

data=$(mktemp -d)
log="$data/serve.log"
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT

# Port 0: the server picks a free port and prints it.
env -u FACELENS_DATABASE_URL -u FACELENS_CONFIG "$bin" serve --listen 127.0.0.1:0 --data-dir "$data/store" \
  >"$log" 2>"$data/serve.err" &
server=$!
addr=""
for _ in $(seq 1 600); do
  addr=$(sed -n 's/^facelens: listening on http:\/\/\([^ ]*\).*/\1/p' "$log")
  [ -n "$addr" ] && break
  if ! kill -0 "$server" 2>/dev/null; then
    echo "facelens serve exited:"; cat "$data/serve.err"; exit 1
  fi
  sleep 0.2
done
[ -n "$addr" ] || { echo "facelens serve did not start"; cat "$data/serve.err"; exit 1; }
key=$(sed -n 's/.*keep it): \([0-9a-f]*\).*/\1/p' "$log")
[ -n "$key" ] || { echo "no first key printed"; cat "$log"; exit 1; }
base="http://$addr"
echo "server: $base (key ${key:0:6}..., data dir $data/store)"

passed=0
failed=0
run_example() {
  local name="$1"; shift
  echo "== $name"
  local out status=0
  out=$("$@" 2>&1) || status=$?
  echo "$out" | tail -n 5
  if [ "$status" -eq 0 ] && grep -q "^face 0: " <<<"$out"; then
    echo "ok: $name (exit 0, a face)"
    passed=$((passed + 1))
  else
    echo "FAILED: $name (exit $status)"
    failed=$((failed + 1))
  fi
}

run_example "curl.sh" examples/clients/curl.sh "$base" "$key" "$image"
run_example "python_requests.py" "$venv/bin/python" examples/clients/python_requests.py "$base" "$key" "$image"
if command -v node >/dev/null 2>&1 && node -e 'process.exit(typeof fetch === "function" ? 0 : 1)'; then
  run_example "fetch.mjs" node examples/clients/fetch.mjs "$base" "$key" "$image"
else
  echo "FAILED: fetch.mjs needs node >= 18 (built-in fetch)"
  failed=$((failed + 1))
fi

# A wrong key must be refused the contract's way (error_code 10001, exit 1), not crash.
status=0
out=$("$venv/bin/python" examples/clients/python_requests.py "$base" 00000000000000000000000000000000 "$image") || status=$?
if [ "$status" -eq 1 ] && grep -q "error 10001" <<<"$out"; then
  echo "ok: a wrong key gets 10001"
  passed=$((passed + 1))
else
  echo "FAILED: wrong key: exit $status, $out"
  failed=$((failed + 1))
fi

echo "client examples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
