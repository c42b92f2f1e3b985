"""The runner's side of the job workspace (its layout and files: `schemas.job_workspace`, the contract
trainers read): staging it in before a job's command runs and its outputs out after, locally in the
runner's process, on Kubernetes in the Job's pod (`python -m services.pipeline.runner.workspace`)."""
