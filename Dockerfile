# syntax=docker/dockerfile:1
# CTM Hub's image: `hub serve` by default; the Helm chart (helm/ctm-hub) runs `hub worker` and
# `hub db upgrade` from the same image. Build from the repository root:
#   docker build -t REGISTRY/ctm-hub:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: the virtualenv, from the pinned tree ------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# requirements.lock pins the whole tree, the dev tools too. The image installs the hub's own
# dependencies at exactly the lock's versions (the lock as constraints; wheels only, so no
# compiler is needed here or later), then the project itself without resolving again.
COPY pyproject.toml README.md requirements.lock ./
RUN python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' \
        > runtime-requirements.txt \
    && pip install --only-binary=:all: --constraint requirements.lock \
        --requirement runtime-requirements.txt setuptools \
    && pip check

COPY hub/ hub/
COPY workers/ workers/
COPY migrations/ migrations/
# The wheel carries the migrations (package `migrations`, beside `hub`, where
# hub/core/db/migrate.py looks); checked from outside the source tree.
RUN pip install --no-deps --no-build-isolation . \
    && cd / && python -c 'from hub.core.db import migrate; assert migrate.current_heads(), "no migrations"' \
    && pip uninstall -y setuptools

# --- runtime: the virtualenv and nothing else ---------------------------------------------
FROM ${PYTHON_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HUB_DATA_DIR=/var/lib/ctm-hub

# A numeric user, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 hub \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin hub \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/ctm-hub

COPY --from=build /opt/venv /opt/venv

USER 10001:10001
WORKDIR /var/lib/ctm-hub
EXPOSE 8000
ENTRYPOINT ["hub"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
