"""Model-family services: aliases, promotion, evaluation, artifacts, loading, batch inference."""
