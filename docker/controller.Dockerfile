# syntax=docker/dockerfile:1.7
# Controller image: `driftline controller run --runtime kubernetes|gitops` (kopf handlers, the
# decide/act loop, /healthz /readyz /metrics on 8081). Build from the repository root:
#   docker build -f docker/controller.Dockerfile -t driftline-controller .
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
LABEL org.opencontainers.image.title="driftline-controller" \
      org.opencontainers.image.licenses="Apache-2.0"
# git and ssh for the GitOps runtime's commits; nothing that compiles.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git=1:2.39.* openssh-client=1:9.2p1-* \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 driftline \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin driftline
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DRIFTLINE_HOME=/tmp/driftline \
    DRIFTLINE_CONTROLLER_HOST=0.0.0.0
USER 10001:10001
WORKDIR /tmp
EXPOSE 8081
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=2)"]
ENTRYPOINT ["driftline"]
CMD ["controller", "run", "--runtime", "kubernetes"]
