#!/usr/bin/env bash
# The second command: install what is missing, lint, and run the whole suite. The suite starts the real
# servers it needs (Postgres, the Kafka-protocol broker, S3, tritonserver) on free ports in a temporary
# state folder and stops them when it ends; it does not touch a stack started with scripts/up.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh

# Browser tests (tests/browser): Playwright drives Debian's chromium, never a browser it downloads.
if [ ! -x /usr/bin/chromium ]; then
    echo "[test] installing Debian's chromium for the browser tests" >&2
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest "$@"
