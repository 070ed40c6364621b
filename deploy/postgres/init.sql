-- Runs once, when the postgres volume is first created, as the `lifeboat` superuser in the
-- `lifeboat` database (the postgres image runs /docker-entrypoint-initdb.d/*.sql).

-- Grafana reads the Lifeboat tables and changes nothing: a read-only role. Tables are
-- created later, by the service's migrations (as `lifeboat`), hence the default privileges.
CREATE ROLE grafana LOGIN PASSWORD 'grafana';
GRANT CONNECT ON DATABASE lifeboat TO grafana;
GRANT USAGE ON SCHEMA public TO grafana;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana;
ALTER DEFAULT PRIVILEGES FOR ROLE lifeboat IN SCHEMA public GRANT SELECT ON TABLES TO grafana;

-- Airflow's metadata (the `airflow` compose profile) in a database of its own.
CREATE ROLE airflow LOGIN PASSWORD 'airflow';
CREATE DATABASE airflow OWNER airflow;

-- MLflow's runs and registered models (the mlflow service's backend store), in a database of
-- their own, owned by `lifeboat`.
CREATE DATABASE mlflow OWNER lifeboat;
