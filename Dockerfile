# curvegan server image: the GAN engine and the REST service, CPU-only torch.
#   docker build -t curvegan:latest .
#   docker run -d -p 8000:8000 -v curvegan-data:/data curvegan:latest
# More in docs/container.md.

# One base for both stages: the venv built in the first is copied into the second, so its
# interpreter path (/usr/local/bin/python) must be the same in both.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- builder: a venv with curvegan[server] installed from a wheel of this tree ----
FROM ${PYTHON_IMAGE} AS builder

# torch==2.13.0 is on PyPI as the CUDA build (GBs of nvidia-* wheels); the CPU index has
# 2.13.0+cpu, which pip prefers (a local version sorts higher) and which still matches the pin.
ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Only what the wheel needs (.dockerignore keeps everything else out of the context).
COPY pyproject.toml README.md ./
COPY curvegan ./curvegan
COPY gan_engine ./gan_engine
COPY service ./service
# What `make run` installs (the Makefile adds dev tools only for `make test`): the client,
# the engine and the service, torch from the CPU index above. DL3013 (pin versions in pip)
# misreads the local project '.[server]' as an unpinned PyPI name; the versions that matter
# are pinned in pyproject.toml (torch==2.13.0).
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[server]'

# ---- runtime: the venv only, no sources, no build tools, not root ----
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="curvegan" \
      org.opencontainers.image.description="A REST service that trains a small GAN and serves the curves it draws (CPU-only torch)" \
      org.opencontainers.image.version="0.1.0"

# A fixed uid/gid so a bind-mounted /data can be chowned to match (chown 10001:10001 DIR).
# /shared/checkpoints is where docker-compose.cluster.yml mounts the checkpoint volume that
# API servers and workers share: a new named volume copies this directory's owner, while
# one mounted on a path the image lacks would be root's and unwritable here.
RUN groupadd --system --gid 10001 curvegan \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/curvegan \
       --shell /usr/sbin/nologin curvegan \
    && mkdir -p /data /shared/checkpoints \
    && chown 10001:10001 /data /shared/checkpoints

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CURVEGAN_DATA_DIR=/data \
    CURVEGAN_HOST=0.0.0.0 \
    CURVEGAN_PORT=8000

# A new named volume starts as a copy of this (empty, owned by curvegan) directory.
VOLUME /data
WORKDIR /home/curvegan
USER 10001:10001
EXPOSE 8000

# slim has no curl: python's urllib, on whatever port CURVEGAN_PORT says. A non-2xx answer
# raises, so the check fails unless /healthz answers 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CURVEGAN_PORT', '8000') + '/healthz', timeout=4)"]

# Exec form: python is PID 1 and gets docker stop's SIGTERM; uvicorn then stops the workers,
# which save a checkpoint and re-queue their jobs (give it time: docker stop -t 30).
CMD ["python", "-m", "service"]
