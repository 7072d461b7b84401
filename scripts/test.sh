#!/usr/bin/env bash
# The project's test command (README): every crate's unit, integration and golden tests.
# Tests that need the evaluation data read it from ../shared/evaldata (or FACELENS_EVALDATA) and
# skip with a message when it is absent; the PostgreSQL / Redis suites run when
# FACELENS_TEST_POSTGRES_URL / FACELENS_TEST_REDIS_URL are set (.ci/run sets them).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --workspace "$@"
