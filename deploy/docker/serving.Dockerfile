# The cvloop-serving image: the serving gateway in front of Triton.
#   docker build -f deploy/docker/serving.Dockerfile --build-arg CVLOOP_IMAGE=cvloop:TAG -t cvloop-serving:TAG deploy/docker
ARG CVLOOP_IMAGE=cvloop:latest
FROM ${CVLOOP_IMAGE}
CMD ["python", "-m", "services.serving"]
