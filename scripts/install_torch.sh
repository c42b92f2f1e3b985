#!/usr/bin/env bash
# Installs the torch environment the model-building fixtures (tests/models_env.py) and training jobs run
# in, apart from .venv (torch's CUDA build is ~5 GB; the services never import it): a virtual environment
# in $CVLOOP_TOOLS_DIR/torch-env (else .cvloop/tools/torch-env), shared by the checkouts that share the
# tools folder. Skips the install when the stamp names the same requirements; a lock keeps two checkouts
# from installing it at once.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install_torch] %s\n' "$*" >&2; }

tools="${CVLOOP_TOOLS_DIR:-.cvloop/tools}"
env_dir="$tools/torch-env"
requirements=scripts/torch-requirements.txt
stamp="$env_dir/.cvloop-installed"
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
job_requirements=scripts/torch-job-requirements.txt
job_stamp="$env_dir/.cvloop-job-installed"
job_wanted=$(sha256sum "$job_requirements" | cut -d' ' -f1)
python="${PYTHON:-python3}"

mkdir -p "$tools"
exec 9>"$tools/torch-env.lock"
flock 9
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    log "installing $requirements into $env_dir (several GB, some minutes)"
    rm -rf "$env_dir"
    "$python" -m venv "$env_dir"
    "$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" >"$stamp"
fi
# The platform's job-side imports (training jobs run with this environment's Python): a small addition
# of its own, so changing it never reinstalls torch.
if [ "$(cat "$job_stamp" 2>/dev/null)" != "$job_wanted" ]; then
    log "installing $job_requirements into $env_dir"
    "$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$job_requirements"
    echo "$job_wanted" >"$job_stamp"
fi
