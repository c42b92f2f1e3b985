"""Small programs following the job-workspace contract (README, "Bring your own trainer"), written to a
temporary folder by the job-runner tests and run by the runner as a training entrypoint and a processing
command. They read only the workspace and write only outputs/."""

from __future__ import annotations

TRAINER_SCRIPT = r"""
import json, os, pathlib, sys, time

root = pathlib.Path(os.environ["CVLOOP_JOB_DIR"])
job = json.loads((root / "job.json").read_text())
parameters = json.loads((root / "parameters.json").read_text())
assert job["run_id"] == os.environ["CVLOOP_RUN_ID"] and job["kind"] == os.environ["CVLOOP_JOB_KIND"]
assert "DATABASE_URL" not in os.environ  # a trainer sees no platform settings
assert "timeout_s" not in parameters  # nor the runner's own parameters
print(f"trainer: job {job['kind']}, run {job['attempt']}, learning_rate {parameters.get('learning_rate')}")
described = json.loads((root / "base_model" / "model_version.json").read_text())
base = (root / "base_model" / "model.onnx").read_bytes()
print(
    f"trainer: base model {described['version']} ({described['detection_type']}), "
    f"labels {','.join(described['labels'])}, {len(base)} bytes"
)
for alias in sorted(p.name for p in (root / "datasets").iterdir()):
    folder = root / "datasets" / alias
    assets = [json.loads(line) for line in (folder / "assets.jsonl").read_text().splitlines()]
    images = [a for a in assets if (folder / a["file"]).stat().st_size > 0]
    annotated = [a["annotation"]["classes"][0] for a in assets if a["annotation"]]
    print(f"trainer: {alias}: {len(assets)} assets, {len(images)} images, annotated {','.join(annotated)}")
    assert json.loads((folder / "labels.json").read_text()) == described["labels"]
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
outputs = root / "outputs"
epochs = 10 if mode == "slow" else 2
for epoch in range(1, epochs + 1):
    print(f"trainer: epoch {epoch}", flush=True)
    if mode == "slow":
        time.sleep(0.4)
(outputs / "model.onnx").write_bytes(base + b" fine-tuned")
(outputs / "labels.json").write_text(json.dumps(described["labels"]))
(outputs / "metrics.json").write_text(json.dumps({"accuracy_before": 0.5, "accuracy_after": 0.75}))
(outputs / "logs").mkdir()
(outputs / "logs" / "epochs.txt").write_text(f"{epochs}\n")
"""

PROCESSING_SCRIPT = r"""
import json, os, pathlib, sys

root = pathlib.Path(os.environ["CVLOOP_JOB_DIR"])
parameters = json.loads((root / "parameters.json").read_text())
suffix = sys.argv[sys.argv.index("--suffix") + 1]
model = (root / "base_model" / "model.onnx").read_bytes()
(root / "outputs" / "model.onnx").write_bytes(model + f" {suffix} scale={parameters['scale']}".encode())
print(f"converted {len(model)} bytes")
"""

STEPS_SCRIPT = r"""
import os, pathlib, time

for step in range(1, 6):
    print(f"step {step}", flush=True)
    time.sleep(0.3)
root = pathlib.Path(os.environ["CVLOOP_JOB_DIR"])
(root / "outputs" / "model.onnx").write_bytes(b"converted by steps.py")
"""
