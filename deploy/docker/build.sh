#!/usr/bin/env bash
# Builds the cvloop base image and every service image with one tag: deploy/docker/build.sh [TAG]
# (default `dev`, the tag overlays/local runs). Needs a Docker engine with BuildKit.
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-dev}"
docker build -f deploy/docker/base.Dockerfile -t "cvloop:$tag" .
for dockerfile in deploy/docker/*.Dockerfile; do
    service=$(basename "$dockerfile" .Dockerfile)
    [ "$service" = base ] && continue
    docker build -f "$dockerfile" --build-arg "CVLOOP_IMAGE=cvloop:$tag" -t "cvloop-$service:$tag" deploy/docker
done
