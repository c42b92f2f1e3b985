#!/usr/bin/env bash
# The second command: install what is missing, lint, and run the whole suite. The suite starts the real
# servers it needs (Postgres, the Kafka-protocol broker, S3, tritonserver) on free ports in a temporary
# state folder and stops them when it ends; it does not touch a stack started with scripts/up.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
# The torch environment the real-model tests build their detectors and segmenters in (apart from .venv).
scripts/install_torch.sh

# Debian packages below come through apt-get, as root or through sudo.
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"

# --- promtool: checks the Prometheus rules and every service's /metrics in the suite -----------------
# Unpacked from Debian's prometheus package into the tools folder (not installed: no daemon starts).
promtool_home="${CVLOOP_TOOLS_DIR:-.cvloop/tools}/prometheus"
if [ ! -x "$promtool_home/usr/bin/promtool" ]; then
    echo "[test] unpacking promtool from Debian's prometheus package into $promtool_home" >&2
    download=$(mktemp -d)
    # apt-get download runs as the unprivileged _apt user when it can: let it write there.
    chmod 777 "$download"
    if ! (cd "$download" && apt-get download -qq prometheus); then
        $sudo_cmd apt-get update -qq
        (cd "$download" && apt-get download -qq prometheus)
    fi
    mkdir -p "$promtool_home"
    dpkg -x "$download"/prometheus_*.deb "$promtool_home"
    rm -rf "$download"
fi

# Browser tests (tests/browser): Playwright drives Debian's chromium, never a browser it downloads.
if [ ! -x /usr/bin/chromium ]; then
    echo "[test] installing Debian's chromium for the browser tests" >&2
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
exec .venv/bin/pytest "$@"
