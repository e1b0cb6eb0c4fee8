# bandit-api: one image for both processes.
#   web:   the default command, python3 -m api (health check: GET /readyz)
#   clock: python3 -m scheduler
# The pinned requirements are installed from wheels downloaded beforehand (scripts/image
# does it: pip wheel -r requirements.txt -w build/wheels, since peewee ships only as
# source), so the build needs no
# package index: the offline build air-gapped sites need anyway.
# BASE_IMAGE: any Debian bookworm; a plain one (no Python) gets Debian's Python 3.11.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

RUN if ! command -v python3 >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin bandit \
    && mkdir -p /data && chown bandit /data

COPY requirements.txt /app/requirements.txt
COPY build/wheels/ /tmp/wheels/
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels \
        -r /app/requirements.txt \
    && rm -rf /tmp/wheels

COPY config.toml /app/
COPY api/ /app/api/
COPY core/ /app/core/
COPY ingest/ /app/ingest/
COPY scheduler/ /app/scheduler/
COPY bandit_client.py /app/
COPY scripts/container-healthcheck /usr/local/bin/container-healthcheck

WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BANDIT_SERVER_HOST=0.0.0.0 \
    BANDIT_DATABASE_PATH=/data/bandit.db
VOLUME /data
USER bandit
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "/usr/local/bin/container-healthcheck"]
CMD ["python3", "-m", "api"]
