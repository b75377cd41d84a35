"""loopml's command line and the embedded Airflow stack it runs DAGs on."""

__version__ = "0.1.0"
