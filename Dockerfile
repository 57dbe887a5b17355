# syntax=docker/dockerfile:1
# sentinel's image for your registry: `docker build -t sentinel:0.1.0 .`
#
# The same recipe as deploy/image/build.sh (which builds and tests the image without
# Docker): Debian bookworm, the packages and user of deploy/image/image.env, the Python
# dependencies pinned by deploy/image/constraints.txt. tests/ops/test_image.py keeps the
# two equivalent. Pin the base by digest in your registry mirror:
#   FROM debian:bookworm-20250520-slim@sha256:<digest of your mirror's copy>
ARG BASE=debian:bookworm-20250520-slim

# -- build: sentinel's wheel and its dependencies into a venv -----------------------
FROM ${BASE} AS build
ARG DEBIAN_PACKAGES="python3 python3-venv libstdc++6 ca-certificates tini"
ARG VENV=/opt/sentinel
RUN apt-get update \
    && apt-get install -y --no-install-recommends ${DEBIAN_PACKAGES} \
    && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN python3 -m venv ${VENV} \
    && ${VENV}/bin/pip install --no-cache-dir --upgrade "pip>=24" \
    && ${VENV}/bin/pip install --no-cache-dir -c /src/deploy/image/constraints.txt /src \
    && ${VENV}/bin/pip uninstall -y pip

# -- runtime: Debian packages, the venv, a non-root user ----------------------------
FROM ${BASE}
ARG DEBIAN_PACKAGES="python3 python3-venv libstdc++6 ca-certificates tini"
ARG VENV=/opt/sentinel
ARG SENTINEL_UID=10001
ARG SENTINEL_GID=10001
ARG STATE_DIR=/var/lib/sentinel
ARG CONFIG_DIR=/etc/sentinel
RUN apt-get update \
    && apt-get install -y --no-install-recommends ${DEBIAN_PACKAGES} \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid ${SENTINEL_GID} sentinel \
    && useradd --uid ${SENTINEL_UID} --gid ${SENTINEL_GID} --home-dir ${STATE_DIR} \
       --no-create-home --shell /usr/sbin/nologin sentinel \
    && mkdir -p ${STATE_DIR} ${CONFIG_DIR} \
    && chown ${SENTINEL_UID}:${SENTINEL_GID} ${STATE_DIR}
COPY --from=build ${VENV} ${VENV}
COPY --from=build /src/playbooks ${CONFIG_DIR}/playbooks
COPY deploy/image/sentinel.yaml ${CONFIG_DIR}/sentinel.yaml
ENV PATH=${VENV}/bin:/usr/local/bin:/usr/bin:/bin \
    SENTINEL_CONFIG=${CONFIG_DIR}/sentinel.yaml \
    PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title=triton-sentinel \
      org.opencontainers.image.licenses=Apache-2.0 \
      org.opencontainers.image.source=https://github.com/triton-sentinel/triton-sentinel
USER ${SENTINEL_UID}:${SENTINEL_GID}
WORKDIR ${STATE_DIR}
VOLUME ${STATE_DIR}
EXPOSE 9308/tcp 9309/tcp
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/sentinel/bin/sentinel"]
# --config as well as $SENTINEL_CONFIG: `sentinel run` reads only --config
CMD ["run", "--config", "/etc/sentinel/sentinel.yaml"]
