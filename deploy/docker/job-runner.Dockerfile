# The cvloop-job-runner image: the job runner: training, processing and reference jobs.
#   docker build -f deploy/docker/job-runner.Dockerfile --build-arg CVLOOP_IMAGE=cvloop:TAG -t cvloop-job-runner:TAG deploy/docker
ARG CVLOOP_IMAGE=cvloop:latest
FROM ${CVLOOP_IMAGE}
CMD ["python", "-m", "services.pipeline.runner"]
