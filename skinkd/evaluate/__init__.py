"""The evaluate stage: metrics with bootstrap intervals, calibration, the test-split
evaluation, external validation, figures and Grad-CAM explanations."""
