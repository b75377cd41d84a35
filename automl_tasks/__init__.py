"""loopml ML core: plain Python, no Airflow import anywhere (see ARCHITECTURE.md)."""
