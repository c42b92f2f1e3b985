#!/usr/bin/env bash
# Builds the cvloop base image and every other image with one tag: deploy/docker/build.sh [TAG]
# (default `dev`, the tag overlays/local runs): each service's, and the job images (trainer-torch: the
# PyTorch trainers'). An image whose Dockerfile has a <name>.Dockerfile.dockerignore beside it is built
# from the repository root (what it copies, that file lists); the others from deploy/docker.
# Needs a Docker engine with BuildKit.
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-dev}"
docker build -f deploy/docker/base.Dockerfile -t "cvloop:$tag" .
for dockerfile in deploy/docker/*.Dockerfile; do
    name=$(basename "$dockerfile" .Dockerfile)
    [ "$name" = base ] && continue
    context=deploy/docker
    [ -f "$dockerfile.dockerignore" ] && context=.
    docker build -f "$dockerfile" --build-arg "CVLOOP_IMAGE=cvloop:$tag" -t "cvloop-$name:$tag" "$context"
done
