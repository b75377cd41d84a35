"""Feature pipelines (issue #15): column understanding, automatic and SQL feature steps.

A feature pipeline turns the raw columns a person gives (and a served endpoint receives)
into the columns a model is trained on. It is fitted once per pipeline run on the rows the
search may see, content-hashed and versioned in MLflow, shipped inside the model's feature
schema, and applied by the same code in training, evaluation, drift checks and serving.
"""
