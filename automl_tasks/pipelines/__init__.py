"""The steps of each pipeline: requests and forms, intake, HPO, retrain, registration, advisor."""
