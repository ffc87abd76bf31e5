"""Figures for the report (matplotlib, no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from skinkd.atomic import atomic_path  # noqa: E402
from skinkd.images import read_image  # noqa: E402
from skinkd.preprocess import STAGE_NUMBERS, Preprocessing, stage_outputs  # noqa: E402


def preprocess_stages_figure(
    examples: Sequence[tuple[str, str]], params: Preprocessing, out: str | os.PathLike
) -> None:
    """One row per (title, image path): the image after each enabled preprocessing stage."""
    rows = [(title, stage_outputs(read_image(path), params)) for title, path in examples]
    n_cols = len(rows[0][1])
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(2.2 * n_cols, 2.3 * len(rows)), squeeze=False
    )
    for r, (title, outputs) in enumerate(rows):
        for c, (stage, image) in enumerate(outputs):
            ax = axes[r][c]
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                number = STAGE_NUMBERS.get(stage)
                ax.set_title(f"{number}. {stage}" if number else stage, fontsize=9)
            if c == 0:
                ax.set_ylabel(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
