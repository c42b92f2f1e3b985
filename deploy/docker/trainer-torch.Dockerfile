# The cvloop-trainer-torch image: the cvloop image with torch and torchvision (scripts/torch-requirements.txt)
# and the trainers' job-side imports (scripts/torch-job-requirements.txt, the same pins as cvloop's), for
# PyTorch training jobs on Kubernetes: a detector version's training_image, its training_entrypoint
# `python -m cvloop.trainers.detection` (cvloop.trainers.detection_data.detector_training). CPU wheels by
# default; CUDA ones with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 (or an empty
# TORCH_INDEX: PyPI's default build). Build from the repository root (build.sh does):
#   docker build -f deploy/docker/trainer-torch.Dockerfile --build-arg CVLOOP_IMAGE=cvloop:TAG -t cvloop-trainer-torch:TAG .
ARG CVLOOP_IMAGE=cvloop:latest
FROM ${CVLOOP_IMAGE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY scripts/torch-requirements.txt scripts/torch-job-requirements.txt /tmp/requirements/
# Into the cvloop environment (root owns it), so that its `python` imports both torch and cvloop's trainers;
# `pip check` fails the build should torch's dependencies move one of cvloop's pins.
USER root
RUN python -m pip install --no-cache-dir --disable-pip-version-check ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
        -r /tmp/requirements/torch-requirements.txt -r /tmp/requirements/torch-job-requirements.txt \
    && python -m pip check \
    && rm -rf /tmp/requirements
USER 10001:10001
CMD ["python", "-m", "cvloop.trainers.detection"]
