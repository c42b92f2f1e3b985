# The cvloop-ingest image: ingest: the monitor endpoint and the predictions consumers.
#   docker build -f deploy/docker/ingest.Dockerfile --build-arg CVLOOP_IMAGE=cvloop:TAG -t cvloop-ingest:TAG deploy/docker
ARG CVLOOP_IMAGE=cvloop:latest
FROM ${CVLOOP_IMAGE}
CMD ["python", "-m", "services.ingest"]
