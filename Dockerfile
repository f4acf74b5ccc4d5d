FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    QUEUEPULSE_HOST=0.0.0.0 \
    QUEUEPULSE_PORT=8000 \
    QUEUEPULSE_DATA_DIR=/data

# tini as PID 1 reaps the embedded PostgreSQL's processes and forwards signals to uvicorn.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/queuepulse
COPY requirements/run.lock ./requirements/
RUN pip install --require-hashes -r requirements/run.lock
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-deps .
# Migrations are found beside the working directory (app.db.migrate looks in the cwd).
COPY alembic.ini ./
COPY migrations ./migrations

RUN useradd --create-home --uid 10001 queuepulse \
    && mkdir -p /data \
    && chown queuepulse:queuepulse /data
USER queuepulse
# Without QUEUEPULSE_DATABASE_URL the service keeps an embedded PostgreSQL here.
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]

ENTRYPOINT ["tini", "--"]
# Migrate, pin the resolved database URL (the embedded one if none is set), then one uvicorn worker:
# the live window lives in the process's memory, so more workers would each see part of the traffic.
CMD ["sh", "-c", "set -e; queuepulse migrate; if [ -z \"${QUEUEPULSE_DATABASE_URL:-}\" ]; then QUEUEPULSE_DATABASE_URL=\"$(python -c 'from app.db.embedded import database_url; from app.settings import Settings; print(database_url(Settings()))')\"; export QUEUEPULSE_DATABASE_URL; fi; exec uvicorn app.main:create_app --factory --host 0.0.0.0 --port 8000 --workers 1 --loop uvloop --http httptools --no-access-log"]
