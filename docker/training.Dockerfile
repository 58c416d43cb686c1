# syntax=docker/dockerfile:1.7
# Training image: the RayJob entrypoint `python -m training.job` and the Ray nodes of its cluster,
# with Driftline installed. Build from the repository root:
#   docker build -f docker/training.Dockerfile -t driftline-training .
# Bases are pinned to a patch release; pin by digest in your registry mirror as well.

FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 UV_NO_CACHE=1 UV_COMPILE_BYTECODE=1
RUN pip install "uv==0.13.9"
WORKDIR /src
COPY requirements/lock.txt requirements/lock.txt
COPY pyproject.toml README.md ./
COPY driftline driftline
COPY serving serving
COPY training training
COPY operators operators
# Runtime dependencies only (no dev tools, no alibi-detect extra), pinned by the lock.
RUN uv venv /opt/venv \
 && uv pip install --python /opt/venv/bin/python -c requirements/lock.txt .

FROM python:3.11.7-slim-bookworm
LABEL org.opencontainers.image.title="driftline-training" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 driftline \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin driftline
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DRIFTLINE_HOME=/tmp/driftline
USER 10001:10001
WORKDIR /tmp
# Every Ray node's dashboard agent reports raylet health on 52365 (Kubernetes probes use it too).
HEALTHCHECK --interval=30s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:52365/api/local_raylet_healthz', timeout=2)"]
CMD ["python", "-m", "training.job"]
