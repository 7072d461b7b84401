#!/usr/bin/env bash
# Load test of `facelens serve` on loopback with real dev images sent the contract's way.
#
#   scripts/loadtest.sh [--images PATH... | --one-face] [--fit 640x480] [--concurrency 1,2,8,32] [--duration 20]
#                       [--backend rten|onnxruntime] [--busy-backoff-ms N] [--json OUT]
#                       [-- extra serve flags]
#
# Builds the release binary and the load generator (crates/facelens/examples/loadgen.rs), starts
# the server on a free port with a fresh data dir and no key requirement, measures the time from
# start to the first 200 of /healthz and /readyz, runs every concurrency level, and prints
# throughput, p50/p95/p99 latency, answers by error code and the server's peak RSS. Defaults:
# the WIDER dev images of ../shared/evaldata (or FACELENS_EVALDATA), refitted to 640x480.
# --one-face: only the WIDER dev photos with exactly one labelled face (99 of 300), each cropped
# around that face before the refit: issue 6's "one-face 640x480 photo".
# Numbers depend on the machine: run baselines in the same session (docs/performance.md).
# FACELENS_BIN=PATH serves with that binary instead of this tree's release build (a before /
# after comparison: build the other tree, copy its binary aside, run both here alternately).
set -euo pipefail
cd "$(dirname "$0")/.."

data="${FACELENS_EVALDATA:-../shared/evaldata}"
images=()
fit="640x480"
levels="1,2,8,32"
duration=20
backend="rten"
json=""
backoff=0
serve_extra=()
one_face=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --images) shift; while [[ $# -gt 0 && "$1" != --* ]]; do images+=("$1"); shift; done ;;
    --one-face) one_face=1; shift ;;
    --fit) fit="$2"; shift 2 ;;
    --no-fit) fit=""; shift ;;
    --concurrency) levels="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --backend) backend="$2"; shift 2 ;;
    --json) json="$2"; shift 2 ;;
    --busy-backoff-ms) backoff="$2"; shift 2 ;;
    --) shift; serve_extra=("$@"); break ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ $one_face -eq 1 ]]; then
  source_args=(--manifest "$data/detection/manifest.jsonl" --labelled-faces 1)
else
  if [[ ${#images[@]} -eq 0 ]]; then
    images=("$data/detection/wider_face_val/images")
  fi
  source_args=(--images "${images[@]}")
fi

features=()
if [[ "$backend" != "rten" ]]; then
  features=(--features ort)
  if [[ -z "${ORT_DYLIB_PATH:-}" ]]; then
    scripts/fetch-onnxruntime.sh third_party/onnxruntime >/dev/null
    ORT_DYLIB_PATH="$PWD/$(ls third_party/onnxruntime/libonnxruntime.so.* | head -n1)"
    export ORT_DYLIB_PATH
  fi
fi
target="${CARGO_TARGET_DIR:-target}/release"
build=(--example loadgen)
if [[ -z "${FACELENS_BIN:-}" ]]; then build+=(--bin facelens); fi
cargo build --release -q -p facelens "${features[@]}" "${build[@]}"
server_bin="${FACELENS_BIN:-$target/facelens}"

dir=$(mktemp -d)
log="$dir/serve.log"
t0=$(date +%s.%N)
"$server_bin" --backend "$backend" serve --listen 127.0.0.1:0 --data-dir "$dir/data" --no-key \
  "${serve_extra[@]}" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT

url=""
for _ in $(seq 1 600); do
  url=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$log" | head -n1 || true)
  if [[ -n "$url" ]] && curl -fsS "$url/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 $pid 2>/dev/null; then cat "$log"; echo "server exited" >&2; exit 1; fi
  sleep 0.02
done
t1=$(date +%s.%N)
echo "server: $server_bin"
echo "server ready at $url in $(echo "$t1 - $t0" | bc -l | xargs printf '%.2f') s (process start to /readyz 200); backend $backend"
echo "server RSS when idle: $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$pid/status)"

args=(--url "$url" "${source_args[@]}" --concurrency "$levels" --duration "$duration" --pid "$pid"
  --busy-backoff-ms "$backoff")
[[ -n "$fit" ]] && args+=(--fit "$fit")
[[ -n "$json" ]] && args+=(--json "$json")
"$target/examples/loadgen" "${args[@]}"
