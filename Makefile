# Two commands do everything: `make up` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CHROMIUM := /usr/bin/chromium
PROMETHEUS := /usr/bin/prometheus
WRK := /usr/bin/wrk
JAVA := /usr/bin/java
HAPROXY := /usr/sbin/haproxy
AIRFLOW_VERSION := 3.3.2
# The celery extra brings the Celery provider and the Redis client (the broker), postgres the
# drivers for the metadata DB and Celery's result backend: what a CeleryExecutor cluster needs.
# Celery 5.7 dropped `retry` from its database backend, which the provider (3.26) imports.
AIRFLOW_REQUIREMENT := 'apache-airflow[celery,postgres]==$(AIRFLOW_VERSION)' 'celery<5.7'
AIRFLOW := .airflow/.installed

.PHONY: up test install bench clean airflow cluster screenshots

up: $(VENV)/.installed
	$(BIN)/lifeboat up

test: $(VENV)/.installed-dev $(CHROMIUM) $(PROMETHEUS) $(AIRFLOW) $(WRK) $(JAVA) $(HAPROXY)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The docs' pictures, drawn by the browser tests from the UI as it is.
screenshots: $(VENV)/.installed-dev $(CHROMIUM)
	LIFEBOAT_SCREENSHOTS=docs/images $(BIN)/python -m pytest tests/system/ui tests/serving/test_multi_dataset.py

install: $(VENV)/.installed

# The scale-out topology on this machine (docs/scaling.md): HAProxy on :8000 in front of two
# `lifeboat serve` replicas (:8001, :8002), the jobs process, an MLflow server, an S3
# endpoint and Prometheus, on this machine's PostgreSQL and Redis. CLUSTER_ARGS adds options
# (`--replicas 3`, `--redis-cluster`; `lifeboat cluster --help`).
cluster: $(VENV)/.installed-dev $(HAPROXY) $(PROMETHEUS)
	DATABASE_URL="$${DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/lifeboat_cluster}" \
	REDIS_URL="$${REDIS_URL:-redis://127.0.0.1:6379/0}" \
	$(BIN)/lifeboat cluster $(CLUSTER_ARGS)

bench: $(VENV)/.installed-dev $(WRK) $(JAVA) $(HAPROXY) $(PROMETHEUS)
	$(BIN)/python -m benchmarks

# The browser tests drive Debian's Chromium through Playwright, which downloads no browser;
# the observability tests run Debian's Prometheus (and promtool) against the live service.
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update && apt-get install -y chromium'

$(PROMETHEUS):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update && apt-get install -y prometheus'

# Airflow runs the DAGs in dags/ from a venv of its own: it caps FastAPI below the app's
# version, so Lifeboat is not installed there; each task runs in $(VENV) (external_python).
# The DAG tests (tests/system/test_airflow_dags.py, test_airflow_celery.py) run this Airflow.
# The stamp follows this Makefile, where the requirement is written: changing it reinstalls.
airflow: $(AIRFLOW)

.airflow/bin/python:
	$(PYTHON) -m venv .airflow
	.airflow/bin/python -m pip install --quiet --upgrade pip

$(AIRFLOW): Makefile | .airflow/bin/python
	.airflow/bin/python -m pip install --quiet $(AIRFLOW_REQUIREMENT)
	touch $@

# Spark (PyPI's pyspark) runs on Java 17; the Spark tests start a standalone master and two
# workers from pyspark's own launch scripts.
$(JAVA):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update && apt-get install -y openjdk-17-jre-headless'

# HAProxy balances the replicas of `make cluster`, its tests and the serving benchmark.
$(HAPROXY):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update && apt-get install -y haproxy'

# The serving benchmark's load generator; tests/system/test_benchmarks.py runs that benchmark too.
$(WRK):
	$(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update && apt-get install -y wrk'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) .airflow .lifeboat .pytest_cache
