-- The job runner: at most one active run per job, enforced here (two runners, or a re-run racing a
-- claim, cannot make a second); and the files a run staged out, recorded by the stage-out step wherever
-- it ran (a local folder, a Kubernetes pod), which the runner turns into experiment artifacts or a new
-- model version when it finishes the run.
CREATE UNIQUE INDEX job_runs_one_active ON job_runs (job_id) WHERE status IN ('pending', 'running');

ALTER TABLE job_runs ADD COLUMN outputs jsonb CHECK (outputs IS NULL OR jsonb_typeof(outputs) = 'array');
