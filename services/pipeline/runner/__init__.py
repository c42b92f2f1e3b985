"""The job runner: training, processing and reference jobs, claimed from Postgres and run locally as
subprocesses or on Kubernetes as batch/v1 Jobs, each in a job workspace (see `workspace`)."""
