"""The pipeline stream: counts submitted assets, requests trainings, creates their experiments and jobs,
exports finished ones as model versions and applies the continuous-deployment policy."""
