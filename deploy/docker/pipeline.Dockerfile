# The cvloop-pipeline image: the pipeline stream (faust): training requests, exports, deployments.
#   docker build -f deploy/docker/pipeline.Dockerfile --build-arg CVLOOP_IMAGE=cvloop:TAG -t cvloop-pipeline:TAG deploy/docker
ARG CVLOOP_IMAGE=cvloop:latest
FROM ${CVLOOP_IMAGE}
CMD ["python", "-m", "services.pipeline"]
