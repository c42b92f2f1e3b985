#!/usr/bin/env bash
# The first command: install what is missing, start the local stack, show its health.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
# The torch environment the detection demo's detector trains in (about 6 min and 6 GB the first time).
scripts/install_torch.sh
.venv/bin/cvloop up
.venv/bin/cvloop status
