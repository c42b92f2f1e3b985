# The `cvloop` image: the cvloop package and its pinned dependencies in a virtual environment, run as an
# unprivileged user. Every service image starts from it; the job runner's Kubernetes Jobs run it as is
# (JOBS_IMAGE), with the job's command. Build from the repository root:
#   docker build -f deploy/docker/base.Dockerfile -t cvloop:TAG .
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY services services
COPY cvloop cvloop
RUN python -m venv /opt/cvloop \
    && /opt/cvloop/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 cvloop \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/cvloop --create-home cvloop
COPY --from=build /opt/cvloop /opt/cvloop
# The services listen on every address of the pod on one port; bytecode was compiled at install, so the
# root file system can stay read-only.
ENV PATH=/opt/cvloop/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CVLOOP_BIND_HOST=0.0.0.0 \
    CVLOOP_HTTP_PORT=8000 \
    CVLOOP_STATE_DIR=/var/lib/cvloop
WORKDIR /var/lib/cvloop
USER 10001:10001
EXPOSE 8000
CMD ["cvloop", "--help"]
