"""Jobs that run inside a job workspace (`$CVLOOP_JOB_DIR`, laid out as `schemas.job_workspace` says and
read by `workspace.py`): the reference trainer for image classification
(`python -m cvloop.trainers.classification`) and a conversion processing
(`python -m cvloop.trainers.quantize`). Their math is pure (`dense.py`, `weight_quantization.py`)."""
