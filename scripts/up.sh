#!/usr/bin/env bash
# The first command: install what is missing, start the local stack, show its health.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/cvloop up
.venv/bin/cvloop status
