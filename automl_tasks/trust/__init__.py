"""Trust reports of model versions (OmniForce §3.1): robustness to noise and to adversarial
inputs, and membership-inference privacy, measured on rows the model never saw."""
