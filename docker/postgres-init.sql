-- The distributed mode's databases on one PostgreSQL server (docker/compose.yaml mounts this
-- into /docker-entrypoint-initdb.d): Airflow's metadata, Optuna's storage, MLflow's store and
-- the serving inference log.
CREATE DATABASE optuna OWNER airflow;
CREATE DATABASE mlflow OWNER airflow;
CREATE DATABASE inference OWNER airflow;
