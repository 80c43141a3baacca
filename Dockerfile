# The image every Airflow service and the sandbox run: Airflow 3.3 with
# OrderHub installed from this checkout, pinned by constraints.txt.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 AIRFLOW_HOME=/opt/airflow
WORKDIR /opt/orderhub
COPY pyproject.toml constraints.txt README.md ./
COPY plugins ./plugins
COPY expectations ./expectations
RUN pip install -c constraints.txt -e . && useradd -m -u 50000 airflow
COPY . .
RUN chown -R airflow /opt/orderhub
USER airflow
