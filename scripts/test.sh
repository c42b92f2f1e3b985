#!/usr/bin/env bash
# The second command: install what is missing, lint, and run the whole suite. The suite starts the real
# servers it needs (Postgres, the Kafka-protocol broker, S3, tritonserver) on free ports in a temporary
# state folder and stops them when it ends; it does not touch a stack started with scripts/up.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest "$@"
