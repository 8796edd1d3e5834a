# syntax=docker/dockerfile:1.7
# rtvbp-bridge container image: build wheels with a compiler in one stage, ship only the virtualenv.
#   docker build -t ghcr.io/rtvbp/rtvbp-bridge:0.1.0 .
#   docker run --rm -p 8080:8080 -e BRIDGE_AUTH_MODE=token -e BRIDGE_AUTH_TOKENS=... \
#     -e BRIDGE_AMQP_URL=amqp://user:pass@rabbitmq:5672/ ghcr.io/rtvbp/rtvbp-bridge:0.1.0

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Compilers only here: any dependency without a wheel for this platform is built in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv

WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY bridge ./bridge
# Shipped inside the package (setup.py): the AMQP contract and the example agents.
COPY schemas ./schemas
COPY examples/*.py ./examples/

# Wheels first (the project and every dependency), then a non-editable install into the venv from
# those wheels only; pip compiles the .pyc files here because the runtime filesystem is read-only.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels ".[fast]" \
    && /opt/venv/bin/pip install --no-index --find-links /wheels "rtvbp-bridge[fast]" \
    && /opt/venv/bin/pip uninstall -y pip setuptools \
    && /opt/venv/bin/python -c "import bridge.cli"

# ---------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rtvbp-bridge" \
      org.opencontainers.image.description="RTVBP application-role bridge: live phone calls onto RabbitMQ" \
      org.opencontainers.image.source="https://github.com/rtvbp/rtvbp-bridge" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

# BRIDGE_HOST: listen on every interface inside the container. With the default auth mode ("none")
# the bridge then refuses to start, so an image run without admission settings fails loudly.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BRIDGE_HOST=0.0.0.0 \
    BRIDGE_PORT=8080

# Numeric, non-root identity; the Helm chart's securityContext uses the same 10001:10001.
RUN groupadd --system --gid 10001 rtvbp \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin rtvbp

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
STOPSIGNAL SIGTERM

# For plain Docker/Compose; Kubernetes ignores it and uses the chart's probes. No curl in slim images.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BRIDGE_PORT', '8080'), timeout=2)"]

ENTRYPOINT ["rtvbp-bridge"]
CMD ["serve"]
