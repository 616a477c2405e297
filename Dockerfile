# syntax=docker/dockerfile:1
#
# One image for both roles of the two-tower service:
#   docker run IMAGE                                            -> recsys serve (the CMD below)
#   docker run IMAGE train --data synthetic --model-root /models -> recsys train
# docs/DEPLOY.md describes how docker-compose.yml and k8s/ use it.

# Both stages start from the same image, so the interpreter that /opt/venv's
# symlinks point at (/usr/local/bin/python3.11) is identical in the runtime stage.
# Pin a digest (python:3.11-slim-bookworm@sha256:...) for reproducible builds.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A compiler only for the (rare) dependency without a wheel; it stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# 1) Dependencies first, in their own layer: it is rebuilt only when
#    pyproject.toml (or the optional constraints.txt lock) changes, not on every
#    source edit. The pins are pyproject's [project].dependencies
#    (tensorflow==2.20.0, tensorflow-recommenders==0.7.7, scann[tf]==1.4.2, ...);
#    a constraints.txt at the repository root, if there is one (e.g. `pip freeze`
#    of a tested environment), pins every transitive dependency too.
#    `constraints.tx[t]` is a glob so that the COPY works when the file is absent.
COPY pyproject.toml constraints.tx[t] ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt
RUN set -eux; \
    if [ -f constraints.txt ]; then set -- -c constraints.txt; fi; \
    pip install "$@" -r /tmp/requirements.txt

# 2) The project itself (no dependency resolution here: step 1 did it).
COPY README.md ./
COPY recsys ./recsys
COPY towers ./towers
COPY training ./training
COPY serving ./serving
COPY artifact ./artifact
RUN set -eux; \
    pip install --no-deps . ; \
    pip check ; \
    TF_USE_LEGACY_KERAS=1 recsys --help > /dev/null

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="recsys-two-tower" \
      org.opencontainers.image.description="Two-tower retrieval service on TensorFlow Recommenders: trainer and FastAPI server" \
      org.opencontainers.image.licenses="Apache-2.0"

# Non-root user with a fixed uid/gid (k8s/ sets runAsUser/fsGroup 10001 to match).
RUN groupadd --system --gid 10001 recsys \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/recsys \
       --create-home --shell /usr/sbin/nologin recsys \
    && mkdir -p /models \
    && chown 10001:10001 /models
# (/models is owned by 10001 so that a new, empty named volume mounted there,
# which Docker initialises from this directory, is writable by the trainer.)

COPY --from=builder /opt/venv /opt/venv

# TF_USE_LEGACY_KERAS=1: TensorFlow Recommenders needs Keras 2 (tf_keras).
# MPLCONFIGDIR: matplotlib (report.png) needs a writable config dir; /tmp is the
# only writable path when the root filesystem is read-only (k8s).
ENV PATH=/opt/venv/bin:$PATH \
    TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    RECSYS_MODEL_ROOT=/models

WORKDIR /home/recsys
USER 10001:10001
EXPOSE 8000

# Liveness only (the process answers HTTP); readiness (a model is loaded) is
# /readyz, which docker-compose.yml and k8s/ probe. No curl in the slim image:
# python's urllib does the request; any error or non-2xx status exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RECSYS_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["recsys"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
