#!/usr/bin/env bash
# Headless-browser test of the web page (/) and the API reference (/docs): builds facelens,
# starts `facelens serve` on a free loopback port with a fresh store (a key required, the
# printed first key typed into the page), and drives Debian's Chromium with playwright-core.
# Screenshots go to target/artifacts/ (web.png, docs.png).
#
# Skips (exit 0, with a message) when Chromium cannot be installed; any failed check exits
# non-zero. The photo is a development image when ../shared/evaldata is there, else a committed one.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

chromium=/usr/bin/chromium
if [[ ! -x $chromium ]]; then
  echo "browser-test: $chromium is absent, installing Debian's chromium"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo -n); else sudo_cmd=(false); fi
  fi
  if ! { "${sudo_cmd[@]}" apt-get update -qq && "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends chromium; } >/dev/null 2>&1 || [[ ! -x $chromium ]]; then
    echo "browser-test: skipped: chromium could not be installed (apt-get install chromium failed)"
    exit 0
  fi
fi

# A family photo from the development data when it is here, else the committed three-face image
# (test-data/README.md), so the test runs on a fresh clone too.
evaldata="${FACELENS_EVALDATA:-$root/../shared/evaldata}"
image="$root/test-data/astronaut_trio.jpg"
dev="$evaldata/detection/wider_face_val/images/20--Family_Group/20_Family_Group_Family_Group_20_730.jpg"
if [[ -f $dev ]]; then image="$dev"; fi
[[ -f $image ]] || { echo "browser-test: $image is missing"; exit 1; }

echo "== npm ci (tests/browser)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

bin="${FACELENS_BIN:-}"
if [[ -z $bin ]]; then
  echo "== cargo build -p facelens"
  cargo build -p facelens
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/facelens"
fi
[[ -x $bin ]] || { echo "browser-test: $bin not found after the build"; exit 1; }

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== facelens serve"
"$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --workers 2 >"$work/out.log" 2>"$work/err.log" &
server_pid=$!
base=""
for _ in $(seq 1 600); do
  base="$(sed -n 's/^facelens: listening on \(http:[^ ]*\).*/\1/p' "$work/out.log" | head -n1)"
  [[ -n $base ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "browser-test: the server exited early:"; cat "$work/err.log"; exit 1
  fi
  sleep 0.2
done
[[ -n $base ]] || { echo "browser-test: the server did not say where it listens"; cat "$work/err.log"; exit 1; }
key="$(sed -n 's/^facelens: created the first API key (shown once, keep it): \([0-9a-f]*\)$/\1/p' "$work/out.log" | head -n1)"
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$base/healthz" >/dev/null || { echo "browser-test: $base/healthz does not answer"; exit 1; }
echo "server at $base (key ${key:+required, using the printed first key})"

artifacts="$root/target/artifacts"
mkdir -p "$artifacts"
echo "== playwright (chromium $($chromium --version 2>/dev/null | awk '{print $2}'))"
FACELENS_BASE="$base" FACELENS_KEY="$key" FACELENS_IMAGE="$image" ARTIFACTS="$artifacts" CHROMIUM="$chromium" \
  node tests/browser/web.test.mjs
