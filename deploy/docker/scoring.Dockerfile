# The cvloop-scoring image: the scoring stream (faust).
#   docker build -f deploy/docker/scoring.Dockerfile --build-arg CVLOOP_IMAGE=cvloop:TAG -t cvloop-scoring:TAG deploy/docker
ARG CVLOOP_IMAGE=cvloop:latest
FROM ${CVLOOP_IMAGE}
CMD ["python", "-m", "services.scoring"]
