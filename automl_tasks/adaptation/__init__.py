"""Large-model adaptation (OmniForce §3.3): PEFT methods on a pretrained text encoder,
miniaturisation of the adapted model, and the Pareto choice among the derived models."""
