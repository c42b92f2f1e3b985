"""Small programs following the job-workspace contract (`schemas.job_workspace`, docs/job-runner.md
"Bring your own trainer"), written to a temporary folder by the job-runner tests and run by the runner as
a training entrypoint and a processing command. They read only the workspace, through the contract's
models (so a file the runner writes that the contract does not describe fails them), and write only
outputs/."""

from __future__ import annotations

TRAINER_SCRIPT = r"""
import json, os, pathlib, sys, time

from schemas.job_workspace import (
    JOB_DIR_ENV, JOB_KIND_ENV, RUN_ID_ENV, AssetLine, JobFile, JobWorkspace, ModelVersionFile
)

workspace = JobWorkspace(pathlib.Path(os.environ[JOB_DIR_ENV]))
job = JobFile.model_validate_json(workspace.job_file.read_text())
parameters = json.loads(workspace.parameters_file.read_text())
assert str(job.run_id) == os.environ[RUN_ID_ENV] and job.kind.value == os.environ[JOB_KIND_ENV]
assert job.parameters == parameters
assert "DATABASE_URL" not in os.environ  # a trainer sees no platform settings
assert "timeout_s" not in parameters  # nor the runner's own parameters
print(f"trainer: job {job.kind.value}, run {job.attempt}, learning_rate {parameters.get('learning_rate')}")
described = ModelVersionFile.model_validate_json(workspace.model_version_file.read_text())
base = workspace.base_model_onnx.read_bytes()
print(
    f"trainer: base model {described.version} ({described.detection_type.value}), "
    f"labels {','.join(described.labels)}, {len(base)} bytes"
)
for alias in sorted(p.name for p in workspace.datasets.iterdir()):
    folder = workspace.dataset(alias)
    lines = workspace.assets_file(alias).read_text().splitlines()
    assets = [AssetLine.model_validate_json(line) for line in lines]
    images = [a for a in assets if (folder / a.file).stat().st_size > 0]
    annotated = [a.annotation.classes[0] for a in assets if a.annotation]
    print(f"trainer: {alias}: {len(assets)} assets, {len(images)} images, annotated {','.join(annotated)}")
    assert json.loads(workspace.labels_file(alias).read_text()) == described.labels
sys.stdout.flush()
mode = parameters.get("mode")
if mode == "fail":
    print("Traceback (most recent call last): ...", file=sys.stderr)
    print("ValueError: learning rate missing", file=sys.stderr)
    sys.exit(3)
if mode == "empty":
    sys.exit(0)  # succeeds, having written nothing
if mode == "sleep":
    print("trainer: sleeping", flush=True)
    time.sleep(600)
outputs = workspace.outputs
epochs = 10 if mode == "slow" else 2
for epoch in range(1, epochs + 1):
    print(f"trainer: epoch {epoch}", flush=True)
    if mode == "slow":
        time.sleep(0.4)
(outputs / "model.onnx").write_bytes(base + b" fine-tuned")
(outputs / "labels.json").write_text(json.dumps(described.labels))
(outputs / "metrics.json").write_text(json.dumps({"accuracy_before": 0.5, "accuracy_after": 0.75}))
(outputs / "logs").mkdir()
(outputs / "logs" / "epochs.txt").write_text(f"{epochs}\n")
"""

PROCESSING_SCRIPT = r"""
import json, os, pathlib, sys

from schemas.job_workspace import JOB_DIR_ENV, JobWorkspace

workspace = JobWorkspace(pathlib.Path(os.environ[JOB_DIR_ENV]))
parameters = json.loads(workspace.parameters_file.read_text())
suffix = sys.argv[sys.argv.index("--suffix") + 1]
model = workspace.base_model_onnx.read_bytes()
converted = model + f" {suffix} scale={parameters['scale']}".encode()
workspace.outputs.joinpath("model.onnx").write_bytes(converted)
print(f"converted {len(model)} bytes")
"""

STEPS_SCRIPT = r"""
import os, pathlib, time

from schemas.job_workspace import JOB_DIR_ENV, JobWorkspace

for step in range(1, 6):
    print(f"step {step}", flush=True)
    time.sleep(0.3)
workspace = JobWorkspace(pathlib.Path(os.environ[JOB_DIR_ENV]))
workspace.outputs.joinpath("model.onnx").write_bytes(b"converted by steps.py")
"""

# What a processing registered by an attacker tries (issue 15): print its environment and descriptors, read
# the local Postgres's password file, and ask the platform's Postgres for every project, with what its
# environment gives and with the local stack's address as it is written in the docs; `sleep` then waits,
# `daemon` leaves a process of its own session behind.
ATTACK_SCRIPT = r"""
import json, os, pathlib, subprocess, sys, time

from schemas.job_workspace import JOB_DIR_ENV, JobWorkspace

workspace = JobWorkspace(pathlib.Path(os.environ[JOB_DIR_ENV]))
parameters = json.loads(workspace.parameters_file.read_text())
print("env: " + ",".join(sorted(os.environ)), flush=True)
descriptors = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        descriptors[fd] = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        pass
print("sockets: " + ",".join(t for t in descriptors.values() if t.startswith("socket:")), flush=True)
try:
    print("password file: " + pathlib.Path(parameters["password_file"]).read_text(), flush=True)
except OSError as exc:
    print(f"password file: {type(exc).__name__}", flush=True)
try:
    print("other workspaces: " + ",".join(os.listdir(workspace.root.parent)), flush=True)
except OSError as exc:
    print(f"other workspaces: {type(exc).__name__}", flush=True)
folder = workspace.root.stat()
print(f"workspace: {oct(folder.st_mode & 0o777)} owner {folder.st_uid} me {os.getuid()}", flush=True)
urls = [os.environ.get("DATABASE_URL"), f"postgresql://cvloop@127.0.0.1:{parameters['postgres_port']}/cvloop"]
for url in filter(None, urls):
    answer = subprocess.run(
        ["psql", "-X", "-A", "-t", "-d", url + "?connect_timeout=5", "-c",
         "SELECT name FROM projects UNION ALL SELECT 'api_keys=' || count(*) FROM api_keys"],
        capture_output=True, text=True, timeout=30,
    )
    print(f"psql exit {answer.returncode}", flush=True)
    print(answer.stdout + answer.stderr, flush=True)
print(f"pid {os.getpid()} pgid {os.getpgid(0)}", flush=True)
if parameters.get("mode") == "sleep":
    print("sleeping", flush=True)
    time.sleep(600)
if parameters.get("mode") == "daemon":  # a session of its own: out of the job's process group
    daemon = subprocess.Popen(["sleep", "600"], start_new_session=True)
    print(f"daemon {daemon.pid}", flush=True)
"""
