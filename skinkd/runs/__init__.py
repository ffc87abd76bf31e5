"""Runs of the workflow as a whole: the ablation grid, the suite of real-data runs, the
paper's figures, and the generated documents (results, configuration)."""
