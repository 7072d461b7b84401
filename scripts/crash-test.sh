#!/usr/bin/env bash
# Crash/restart test of `facelens serve` (scripts/crash-test.py does the work; see its --help).
#
#   scripts/crash-test.sh [--build] [--mode sqlite|replicated|both] [--cycles 3] [--json OUT]
#
# sqlite: kill -9 the server under load, restart it on the same data dir, check usage, quota
# and tokens. replicated: two replicas on a private PostgreSQL cluster (started in a temp dir on
# its own port, never the machine's own server) + Redis; kill -9 a replica and the postmaster
# under load. Uses $FACELENS_BIN, else target/debug/facelens (--build: `cargo build -p facelens`
# first); $PG_BIN (default /usr/lib/postgresql/<newest>/bin); $FACELENS_CRASH_REDIS_URL (default
# redis://127.0.0.1:6379/13, "none" to run without Redis). Exit status 0 only if every check
# passes. Results of a run: docs/reliability-results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--build" ]]; then
  shift
  cargo build -q -p facelens --bin facelens
fi
exec python3 scripts/crash-test.py "$@"
