"""An ablation grid so far, while it runs: the table and validation readings that
docs/results.md will show, from the cell results already written (a grid of many seeds
runs for hours; its table rule waits for the last cell).

    .venv/bin/python -m skinkd.runs.grid_progress results/ham10000_pretrained
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from skinkd.runs.ablation import summarise, summarise_milestones
from skinkd.runs.readings import validation_choices
from skinkd.runs.results_doc import ablation_rows, epochs_section

# What every cell trains from: a cell result older than any of them is retrained by
# Snakemake, so it is not the grid's.
CELL_SOURCES = ("teacher/soft_labels.npz", "data/splits.csv")


def finished_cells(run: Path) -> tuple[list[dict[str, Any]], list[Path]]:
    """The cell results of ``run`` that are current, and the stale ones left out."""
    sources = [run / name for name in CELL_SOURCES if (run / name).exists()]
    newest = max((path.stat().st_mtime for path in sources), default=0.0)
    current, stale = [], []
    for path in sorted((run / "ablation" / "cells").glob("*/seed_*.json")):
        if path.stat().st_mtime < newest:
            stale.append(path)
        else:
            current.append(json.loads(path.read_text()))
    return current, stale


def render_progress(run: Path) -> str:
    """The finished cells as a markdown table, each read on its validation columns, and
    their ROC AUC against epochs where they have milestones."""
    results, stale = finished_cells(run)
    left_out = f"; {len(stale)} stale results left out (older than what they trained from)" if stale else ""
    if not results:
        return f"{run}: no cell finished yet{left_out}.\n"
    epochs = {result["cell"]: result["student"]["epochs"] for result in results}
    table = summarise(results)
    lines = [f"{run}: {len(results)} cell-seeds finished{left_out}."]
    lines += ablation_rows(table, epochs)
    lines += ["", *(f"- {reading}" for reading in validation_choices(table))]
    lines += epochs_section(summarise_milestones(results))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run's results folder, results/<name>")
    args = parser.parse_args(argv)
    print(render_progress(args.run), end="")


if __name__ == "__main__":
    main()
