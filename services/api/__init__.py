"""Control plane over HTTP: registry, deployments, pipeline settings, review and submission, jobs."""
