#!/usr/bin/env bash
# Soak test of `facelens serve` (scripts/soak.py does the work; see its --help).
#
#   scripts/soak.sh [--build] [--duration 600] [--threads 16] [--json OUT] [-- extra serve flags]
#
# Uses $FACELENS_BIN, else target/debug/facelens (--build: `cargo build -p facelens` first);
# images from $FACELENS_EVALDATA (default ../shared/evaldata). Exit status 0 only if every
# check passes. Results of a run: docs/reliability-results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--build" ]]; then
  shift
  cargo build -q -p facelens --bin facelens
fi
exec python3 scripts/soak.py "$@"
