-- The distributed mode's databases on one PostgreSQL server (docker/compose.yaml mounts this
-- into /docker-entrypoint-initdb.d): Airflow's metadata, Optuna's storage, MLflow's store.
CREATE DATABASE optuna OWNER airflow;
CREATE DATABASE mlflow OWNER airflow;
