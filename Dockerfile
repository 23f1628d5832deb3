# syntax=docker/dockerfile:1
# The control plane's image: one image for every role (API and portal, inference gateway,
# reconciler workers, the migration Job); the Helm chart in helm/ picks the role with
# environment variables. Multi-stage: the builder compiles wheels into a venv, the runtime
# stage copies only that venv onto a slim base (no compiler, no pip cache, no sources).
#
#   docker build -t control-plane:0.1.0 .
#
# No secret is baked in: the database URL, the session key and the key files arrive at run
# time (environment from Kubernetes Secrets, a mounted volume for CP_KEY_DIR).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY control_plane ./control_plane
COPY billing ./billing
COPY portal ./portal
COPY migrations ./migrations
RUN pip install --upgrade pip \
 && pip install . \
 && python -m compileall -q /opt/venv

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG CP_UID=10001
LABEL org.opencontainers.image.title="sovereign-control-plane" \
      org.opencontainers.image.description="Control plane for a sovereign GPU cloud"
# tini reaps children (Triton, Slurm and libvirt client processes) and forwards signals.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid ${CP_UID} cp \
 && useradd --system --uid ${CP_UID} --gid ${CP_UID} --no-create-home \
      --home-dir /var/run/cp --shell /usr/sbin/nologin cp \
 && install -d -o ${CP_UID} -g ${CP_UID} -m 0700 /var/run/cp
COPY --from=builder /opt/venv /opt/venv
# Read-only root filesystem: everything the process writes lives under /var/run/cp (an
# emptyDir, or the shared volume holding the key files) and /tmp (an emptyDir).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/run/cp \
    TMPDIR=/tmp \
    CP_ENVIRONMENT=production \
    CP_LOG_FORMAT=json \
    CP_HOST=0.0.0.0 \
    CP_PORT=8000 \
    CP_KEY_DIR=/var/run/cp/data/keys \
    CP_SIM_DIR=/var/run/cp/data/sim \
    CP_REDFISH_STATE_DIR=/var/run/cp/data/redfish \
    CP_MODEL_STORE_ROOT=/var/run/cp/data/models \
    CP_TRITON_DIR=/var/run/cp/triton
WORKDIR /var/run/cp
USER ${CP_UID}:${CP_UID}
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["/usr/bin/tini", "--", "cpctl"]
CMD ["serve"]
