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
# `queuepulse run` migrates, resolves the database (the embedded one in /data if none is set) and serves
# one uvicorn worker with the bounded-header protocol: the live window lives in the process's memory, so
# more workers would each see part of the traffic. Host and port come from QUEUEPULSE_HOST/PORT above.
CMD ["queuepulse", "run"]
