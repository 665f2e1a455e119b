"""Training: the Model Garden experiment config, its schedule, the trainer and its validation."""
