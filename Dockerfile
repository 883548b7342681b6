# sigreward inference server image (CUDA).
#
#   docker build -t sigreward:0.1.0 .
#   docker build -t sigreward:0.1.0-baked --build-arg BAKE_MODEL=<hub model id> .
#
# torch==2.13.0 from PyPI (pinned in constraints.txt) is a CUDA 13 build that brings its own
# CUDA libraries as wheels; the base image supplies the NVIDIA container-runtime settings and
# requires a host driver that supports CUDA 13.0. See docs/deploy.md.
# Without a Docker engine or registry access: scripts/build-image-local (buildah on a Debian
# base made by debootstrap; docs/deploy.md, "Building without Docker (buildah)").

ARG BASE_IMAGE=nvidia/cuda:13.0.2-runtime-ubuntu24.04
# A hub model id to download into the image at build time (needs hub access while building).
ARG BAKE_MODEL=

FROM ${BASE_IMAGE} AS base
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# gcc, libc6-dev and python3-dev stay in the runtime image on purpose: Triton compiles its
# small C launcher with the system compiler against Python.h the first time a kernel runs.
# Distribution packages follow the pinned base tag's archive; exact apt pins break on updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-dev gcc libc6-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*

FROM base AS builder
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, against a stub package, so that code changes do not reinstall torch.
COPY pyproject.toml constraints.txt README.md ./
RUN mkdir -p service/api service/domain service/engine service/reward service/store kernels \
    && for d in service service/api service/domain service/engine service/reward service/store kernels; do \
        touch "$d/__init__.py"; done \
    && pip install -c constraints.txt . \
    && rm -rf service kernels build ./*.egg-info
COPY service ./service
COPY kernels ./kernels
RUN pip install -c constraints.txt --no-deps --force-reinstall . \
    && rm -rf build ./*.egg-info \
    && sigreward --help >/dev/null

FROM base AS runtime
ARG UID=10001
ARG GID=10001
RUN groupadd --gid ${GID} sigreward \
    && useradd --uid ${UID} --gid ${GID} --home-dir /home/sigreward --create-home \
        --shell /usr/sbin/nologin sigreward \
    && mkdir -p /data /models /cache \
    && chown ${UID}:${GID} /data /models /cache
COPY --from=builder /opt/venv /opt/venv
# Every writable path lives under /data, /cache or /tmp, so the root filesystem can be mounted
# read-only (the Helm chart mounts emptyDirs there).
ENV PATH=/opt/venv/bin:$PATH \
    SIGREWARD_HOST=0.0.0.0 \
    SIGREWARD_PORT=8000 \
    SIGREWARD_DATA_DIR=/data \
    HF_HOME=/cache/huggingface \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TRITON_HOME=/cache \
    TRITON_CACHE_DIR=/cache/triton \
    MPLCONFIGDIR=/cache/matplotlib \
    XDG_CACHE_HOME=/cache \
    HOME=/home/sigreward
WORKDIR /home/sigreward
USER ${UID}:${GID}
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SIGREWARD_PORT', '8000') + '/livez', timeout=4)"]
ENTRYPOINT ["sigreward", "serve"]
CMD []

# The model is downloaded only in this stage, which the last FROM picks when BAKE_MODEL is set.
FROM runtime AS runtime-baked
ARG BAKE_MODEL
ARG BAKE_REVISION=
ARG UID=10001
ARG GID=10001
USER 0:0
RUN --mount=type=secret,id=hf_token \
    test -n "$BAKE_MODEL" || { echo "BAKE_MODEL is empty" >&2; exit 1; } \
    && HF_TOKEN="$(cat /run/secrets/hf_token 2>/dev/null || true)" HF_HUB_OFFLINE=0 \
       HF_HOME=/tmp/hf-build python -c "import os; from huggingface_hub import snapshot_download; snapshot_download(repo_id=os.environ['BAKE_MODEL'], revision=os.environ.get('BAKE_REVISION') or None, local_dir='/opt/sigreward/model', token=os.environ.get('HF_TOKEN') or None, ignore_patterns=['*.h5', '*.msgpack', '*.onnx', '*.ot', '*.tflite', 'onnx/*', 'openvino/*', 'coreml/*'])" \
    && rm -rf /tmp/hf-build /opt/sigreward/model/.cache \
    && chmod -R a+rX /opt/sigreward
USER ${UID}:${GID}
ENV SIGREWARD_MODEL=/opt/sigreward/model
LABEL io.sigreward.baked-model="${BAKE_MODEL}"

# hadolint ignore=DL3006
FROM runtime${BAKE_MODEL:+-baked} AS final
