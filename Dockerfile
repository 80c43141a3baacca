# The image every OrderHub service runs (docker-compose.yml): Airflow 3.3 with
# OrderHub installed from this checkout, pinned by constraints.txt, plus the
# CeleryExecutor's provider and Redis client for the celery profile.
# Its entrypoint follows Airflow's official image: `docker run orderhub scheduler`
# runs `airflow scheduler` (docker/entrypoint.sh says which commands it knows).
FROM python:3.11-slim

# curl for the health checks, as in Airflow's official compose file
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    ORDERHUB_ROOT=/opt/orderhub \
    ORDERHUB_HOME=/opt/airflow/orderhub
WORKDIR /opt/orderhub

# Dependencies first (a layer that survives code changes), then the code.
COPY pyproject.toml constraints.txt README.md ./
COPY plugins ./plugins
COPY tools ./tools
COPY expectations ./expectations
RUN pip install -c constraints.txt -e '.[celery]'
COPY . .

# The airflow user of the official image (uid 50000, group 0); compose runs
# every service as ${AIRFLOW_UID}:0, so the files are group 0 and writable by it.
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home airflow \
    && chgrp -R 0 /opt/orderhub /opt/airflow \
    && chmod -R g=u /opt/orderhub /opt/airflow
USER 50000

ENTRYPOINT ["/opt/orderhub/docker/entrypoint.sh"]
CMD ["--help"]
