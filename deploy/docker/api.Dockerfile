# The cvloop-api image: the control plane (FastAPI over Postgres, Kafka and S3).
#   docker build -f deploy/docker/api.Dockerfile --build-arg CVLOOP_IMAGE=cvloop:TAG -t cvloop-api:TAG deploy/docker
ARG CVLOOP_IMAGE=cvloop:latest
FROM ${CVLOOP_IMAGE}
CMD ["python", "-m", "services.api"]
