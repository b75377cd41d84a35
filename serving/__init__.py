"""BentoML services that serve a model family's champion from the MLflow registry."""
