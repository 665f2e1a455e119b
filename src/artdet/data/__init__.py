"""Data stages: LabelImg XML in, checked, resized, split, CSV and TFRecords out, with reports."""
