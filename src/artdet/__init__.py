"""artdet: a reproducible pipeline from LabelImg-labelled photos to an evaluated, exported detector."""

__version__ = "0.1.0"
