"""Training, evaluation and scoring on top of the models, losses and metrics."""
