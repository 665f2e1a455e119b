"""Evaluation of exported models: inference on the test records, COCO metrics, figures, comparison."""
