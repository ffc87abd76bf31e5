"""Figures for the report (matplotlib, no display needed)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from skinkd.atomic import atomic_path  # noqa: E402
from skinkd.data.images import read_image  # noqa: E402
from skinkd.data.preprocess import STAGE_NUMBERS, Preprocessing, stage_outputs  # noqa: E402
from skinkd.evaluate.metrics import roc_auc, roc_curve  # noqa: E402


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


CLASS_NAMES = ("benign", "malignant")
# The columns a training history (skinkd.nn.fit's CSV) must have for the training-curve figure.
HISTORY_COLUMNS = ("epoch", "loss", "val_loss", "accuracy", "val_accuracy")


def _save(fig: plt.Figure, out: str | os.PathLike) -> None:
    """Write the figure as PNG atomically and free it."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def confusion_matrix_figure(evals: Sequence[Mapping], out: str | os.PathLike) -> None:
    """One confusion matrix per evaluation (skinkd.evaluate.metrics.evaluate_model results): counts
    with the share of each true class, shaded by that share so unequal classes compare."""
    if not evals:
        raise ValueError("confusion_matrix_figure: no evaluations given")
    fig, axes = plt.subplots(1, len(evals), figsize=(3.4 * len(evals), 3.3), squeeze=False)
    for ax, evaluation in zip(axes[0], evals, strict=True):
        m = evaluation["metrics"]
        counts = np.array([[m["tn"], m["fp"]], [m["fn"], m["tp"]]])
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for (row, col), count in np.ndenumerate(counts):
            ax.text(
                col,
                row,
                f"{count}\n{share[row, col]:.1%}",
                ha="center",
                va="center",
                color="white" if share[row, col] > 0.5 else "black",
                fontsize=10,
            )
        ax.set_xticks([0, 1], CLASS_NAMES)
        ax.set_yticks([0, 1], CLASS_NAMES, rotation=90, va="center")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{evaluation['model']} (acc {m['accuracy']:.3f})", fontsize=10)
    fig.tight_layout()
    _save(fig, out)


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], out: str | os.PathLike) -> None:
    """ROC curves of several models on one axis, {model: (labels, malignant probability)},
    each with its AUC in the legend."""
    if not curves:
        raise ValueError("roc_figure: no curves given")
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    for model, (labels, prob) in curves.items():
        fpr, tpr = roc_curve(labels, prob)
        ax.plot(fpr, tpr, label=f"{model} (AUC {roc_auc(labels, prob):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, out)


def training_curves_figure(histories: Mapping[str, pd.DataFrame], out: str | os.PathLike) -> None:
    """Loss and accuracy per epoch, training (solid) against validation (dashed), one colour
    per history ({name: history table with the HISTORY_COLUMNS})."""
    if not histories:
        raise ValueError("training_curves_figure: no histories given")
    for name, history in histories.items():
        missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
        if missing:
            raise ValueError(f"training history {name!r} lacks column(s) {missing}")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, history) in enumerate(histories.items()):
        colour = colours[k % len(colours)]
        for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
            ax.plot(history["epoch"], history[metric], color=colour, label=f"{name} train")
            ax.plot(
                history["epoch"],
                history[f"val_{metric}"],
                color=colour,
                linestyle="--",
                label=f"{name} val",
            )
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out)


def ablation_figure(table: pd.DataFrame, out: str | os.PathLike) -> None:
    """Mean test ROC AUC per cell with the seed spread, one panel per factor."""
    baseline = table.loc[table["factor"] == "baseline", "roc_auc_mean"]
    factors = [f for f in dict.fromkeys(table["factor"]) if f != "baseline"]
    if not factors:
        raise ValueError("the ablation table has no factor besides the baseline")
    cols = min(4, len(factors))
    rows = -(-len(factors) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax, factor in zip(axes.ravel(), factors):
        part = table[table["factor"] == factor]
        ax.bar(
            part["value"].astype(str),
            part["roc_auc_mean"],
            yerr=part["roc_auc_std"].fillna(0),
            color="#4c72b0",
            capsize=3,
        )
        if len(baseline):
            ax.axhline(baseline.iloc[0], color="black", linestyle="--", linewidth=1)
        ax.set_title(factor, fontsize=9)
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", labelsize=7, rotation=30)
    for ax in axes.ravel()[len(factors) :]:
        ax.axis("off")
    axes[0][0].set_ylabel("test ROC AUC")
    fig.tight_layout()
    _save(fig, out)


def milestones_figure(table: pd.DataFrame, out: str | os.PathLike) -> None:
    """Mean ROC AUC against training epochs per ablation cell, with the seed spread, on the
    validation split (where settings are chosen) and the test split."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, split in zip(axes, ("val", "test")):
        for cell, part in table.groupby("cell", sort=False):
            ax.errorbar(
                part["epochs"], part[f"{split}_roc_auc_mean"],
                yerr=part[f"{split}_roc_auc_std"].fillna(0), marker="o", capsize=3, label=cell,
            )  # fmt: skip
        ax.set_xlabel("training epochs")
        ax.set_title(f"{split} split", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ROC AUC (mean over seeds)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _save(fig, out)


def shifts_figure(
    table: pd.DataFrame, summary: Mapping[str, Mapping[str, Any]], out: str | os.PathLike
) -> None:
    """ROC AUC against severity for every acquisition shift, one panel per model, the clean
    AUC dashed; each title gives the mean over all shifted conditions and its drop."""
    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.8), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, model in zip(axes[0], models):
        rows = table[table["model"] == model]
        clean = rows.loc[rows["shift"] == "clean", "roc_auc"].iloc[0]
        for shift, part in rows[rows["shift"] != "clean"].groupby("shift", sort=False):
            ax.plot(part["severity"], part["roc_auc"], marker="o", markersize=3, label=shift)
        ax.axhline(clean, color="black", linestyle="--", linewidth=1)
        s = summary[model]
        ax.set_title(f"{model}: mean {s['mean_shifted_roc_auc']:.3f} (clean {clean:.3f}, "
                     f"drop {s['drop']:.3f})", fontsize=8)  # fmt: skip
        ax.set_xlabel("severity")
        ax.set_xticks([1, 2, 3, 4, 5])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("ROC AUC")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    _save(fig, out)


def reliability_figure(
    curves: Mapping[str, Mapping[str, Any]],
    threshold: float,
    threshold_note: str,
    out: str | os.PathLike,
    images: str = "test images",
) -> None:
    """Reliability diagram: observed malignant fraction against mean P(malignant) per bin
    for each of ``curves`` ({name: ``calibration.reliability`` result}), with its ECE, the
    bin counts of the first below, and the decision ``threshold``."""
    fig, (ax, counts) = plt.subplots(
        2, 1, figsize=(4.8, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    for name, curve in curves.items():
        bins = [b for b in curve["bins"] if b["count"]]
        ax.plot([b["mean_predicted"] for b in bins], [b["observed"] for b in bins], marker="o",
                label=f"{name} (ECE {curve['ece']:.3f})")  # fmt: skip
    for axis in (ax, counts):
        axis.axvline(threshold, color="tab:red", linestyle="--", linewidth=1)
    ax.text(threshold, 0.02, f" threshold {threshold:.3f}\n ({threshold_note})", color="tab:red",
            fontsize=7)  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_ylabel("observed malignant fraction")
    ax.legend(loc="upper left", fontsize=8)
    first = next(iter(curves.values()))["bins"]
    centres = [(b["low"] + b["high"]) / 2 for b in first]
    counts.bar(centres, [b["count"] for b in first], width=(first[0]["high"] - first[0]["low"]) * 0.9)
    counts.set_xlabel("predicted P(malignant)")
    counts.set_ylabel(images)
    fig.tight_layout()
    _save(fig, out)


def gradcam_figure(
    images: np.ndarray,
    labels: np.ndarray,
    explained: Mapping[str, tuple[np.ndarray, np.ndarray]],
    out: str | os.PathLike,
) -> None:
    """One row per sample image: the preprocessed image, then each model's Grad-CAM overlay
    (evidence for the image's true class), {model: (heatmaps (n, S, S), P(malignant) (n,))},
    titled with its P(malignant)."""
    from skinkd.evaluate.explain import overlay

    columns = 1 + len(explained)
    fig, axes = plt.subplots(len(images), columns, figsize=(1.9 * columns, 1.9 * len(images)), squeeze=False)
    names = ("benign", "malignant")
    for row, (image, label) in enumerate(zip(images, labels, strict=True)):
        axes[row, 0].imshow(image)
        axes[row, 0].set_title(f"{names[int(label)]}: evidence for {names[int(label)]}", fontsize=7)
        for col, (model, (heatmaps, prob)) in enumerate(explained.items(), start=1):
            axes[row, col].imshow(overlay(image, heatmaps[row]))
            axes[row, col].set_title(f"{model}: P(malignant) {prob[row]:.2f}", fontsize=7)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    _save(fig, out)
