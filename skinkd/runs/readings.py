"""The plain-language readings of ``docs/results.md``: what each ablation cell, each pair of
runs and each external set says, computed from the numbers the document shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from skinkd.runs.paper import PAPER_FIGURES
from skinkd.runs.suite import COMPARISONS


def external_reading(name: str, external: Mapping[str, Any]) -> str | None:
    """How much of an external set the run had seen, and what leaving it out does to the
    student's AUC."""
    student = external["models"].get("student")
    if student is None or "thresholds" not in student["all"]:
        return None
    overlap = external["overlap"]
    whole = student["all"]["thresholds"]["validation"]["metrics"]["roc_auc"]
    text = (
        f"on `{name}`, {overlap['seen']} of {overlap['images']} images match a training or "
        f"validation image of the run; the student's ROC AUC is {whole:.3f} on the whole set"
    )
    unseen = student["without_overlap"]
    if "thresholds" not in unseen:
        return text + f", and the {unseen['n']} unseen images hold one class only."
    alone = unseen["thresholds"]["validation"]["metrics"]["roc_auc"]
    return text + f" and {alone:.3f} on the {unseen['n']} unseen images ({alone - whole:+.3f})."


# Ablation cells read against the baseline: (cell, what the baseline has that it lacks).
CELL_READINGS = (
    ("alpha-1.0", "distillation"),
    ("preprocessing-none", "the four preprocessing stages"),
    ("preprocessing-no_closing", "the closing stage"),
    ("preprocessing-no_bilateral", "the bilateral stage"),
    ("preprocessing-no_highlight", "the highlight stage"),
    ("preprocessing-no_unsharp", "the unsharp stage"),
    ("preprocessing-linear_resize", "area interpolation (against linear) when shrinking"),
)


# Ablation cells that add something to the baseline: (cell, what the cell has that it lacks).
ADDITION_READINGS = (
    ("distillation-consistent", "consistent distillation"),
    ("classes-dx", "seven-class outputs"),
)


def _seeds(count: float) -> str:
    return "1 seed" if int(count) == 1 else f"{int(count)} seeds"


def _spread(*stds: float) -> float:
    """The larger seed spread of two cells; a one-seed cell has none, so the other's counts."""
    known = [sd for sd in stds if not pd.isna(sd)]
    return max(known) if known else float("nan")


def _effect(gain: float, spread: float, change: str) -> str:
    if gain > spread:
        return f"{change} raises the test AUC by more than the seed spread ({gain / spread:.1f}x)"
    if gain < -spread:
        return f"{change} lowers the test AUC by more than the seed spread ({-gain / spread:.1f}x)"
    return "the difference is within the seed spread"


def _reading(ablation: pd.DataFrame | None, cell: str, thing: str, cell_adds: bool) -> str | None:
    """The baseline against ``cell``, which lacks ``thing`` (or adds it, ``cell_adds``):
    whether ``thing`` moves the mean test AUC by more than the seed spread (the larger of
    the two standard deviations over seeds)."""
    if ablation is None:
        return None
    cells = ablation.set_index("cell")
    if "baseline" not in cells.index or cell not in cells.index:
        return None
    with_it, without = cells.loc["baseline"], cells.loc[cell]
    if cell_adds:
        with_it, without = without, with_it
    gain = with_it["roc_auc_mean"] - without["roc_auc_mean"]
    spread = _spread(with_it["roc_auc_std"], without["roc_auc_std"])
    verdict = _effect(gain, spread, f"adding {thing}") if cell_adds else _effect(-gain, spread, f"dropping {thing}")
    return (
        f"student test AUC {with_it['roc_auc_mean']:.3f} with {thing}, "
        f"{without['roc_auc_mean']:.3f} without ({gain:+.3f}, {_seeds(with_it['seeds'])}, "
        f"spread {spread:.3f}): {verdict}."
    )


def cell_reading(ablation: pd.DataFrame | None, cell: str, thing: str) -> str | None:
    """The baseline against ``cell``, the baseline without ``thing``."""
    return _reading(ablation, cell, thing, cell_adds=False)


def addition_reading(ablation: pd.DataFrame | None, cell: str, thing: str) -> str | None:
    """The baseline against ``cell``, the baseline plus ``thing``."""
    return _reading(ablation, cell, thing, cell_adds=True)


def _against_spread(gain: float, spread: float) -> int:
    """+1 beyond the seed spread up, -1 beyond it down, 0 within it."""
    return 1 if gain > spread else -1 if gain < -spread else 0


def validation_choices(ablation: pd.DataFrame | None) -> list[str]:
    """Each cell against the baseline on the validation columns a setting is chosen on: its
    ROC AUC and, where the grid ran the shift benchmark, its mean under the shifts. A cell is
    worth adopting when one of the two rises beyond the seed spread and neither falls beyond
    it; the test split and the external sets play no part."""
    if ablation is None or "val_roc_auc_mean" not in ablation:
        return []
    cells = ablation.set_index("cell")
    if "baseline" not in cells.index:
        return []
    columns = [("val_roc_auc", "validation AUC")]
    if "val_shifted_roc_auc_mean" in cells:
        columns.append(("val_shifted_roc_auc", "validation AUC under shifts"))
    base = cells.loc["baseline"]
    readings = []
    for cell, row in cells.drop("baseline").iterrows():
        parts, moves, spreads = [], [], []
        for column, name in columns:
            gain = row[f"{column}_mean"] - base[f"{column}_mean"]
            spreads.append(_spread(row[f"{column}_std"], base[f"{column}_std"]))
            moves.append(_against_spread(gain, spreads[-1]))
            spread = "no spread" if pd.isna(spreads[-1]) else f"spread {spreads[-1]:.3f}"
            parts.append(f"{name} {row[f'{column}_mean']:.3f} against {base[f'{column}_mean']:.3f} "
                         f"({gain:+.3f}, {spread})")  # fmt: skip
        verdict = (
            "not judged: one seed each, no spread to judge by"
            if any(pd.isna(spread) for spread in spreads)
            else "worth adopting: it gains beyond the seed spread and loses nowhere beyond it"
            if max(moves) > 0 and min(moves) >= 0
            else "not worth adopting: it loses beyond the seed spread"
            if min(moves) < 0
            else "not worth adopting: within the seed spread"
        )
        readings.append(f"choice on validation, {cell} ({_seeds(row['seeds'])}): "
                        f"{'; '.join(parts)}: {verdict}.")  # fmt: skip
    return readings


def teacher_gap_reading(run: Mapping[str, Any]) -> str | None:
    """The teacher's test AUC against its student's (what distillation could transfer)."""
    evals = run["evals"]
    if "teacher" not in evals or "student" not in evals:
        return None
    teacher, student = (evals[m]["metrics"]["roc_auc"] for m in ("teacher", "student"))
    side = "ahead of" if teacher > student else "behind"
    return (
        f"teacher test AUC {teacher:.3f}, {side} its student's {student:.3f} "
        f"(gap {teacher - student:+.3f})."
    )


def largest_effects(ablation: pd.DataFrame | None, count: int = 3) -> str | None:
    """The cells whose mean test AUC moves furthest from the baseline's."""
    if ablation is None or "baseline" not in set(ablation["cell"]):
        return None
    cells = ablation.set_index("cell")["roc_auc_mean"]
    change = (cells.drop("baseline") - cells["baseline"]).sort_values(key=abs, ascending=False)
    if change.empty:
        return None
    listed = ", ".join(f"{cell} {delta:+.3f}" for cell, delta in change.head(count).items())
    return f"the largest changes of mean test AUC from the baseline's {cells['baseline']:.3f}: {listed}."


def factor_readings(ablation: pd.DataFrame, baseline: Mapping[str, Any]) -> list[str]:
    """A factor study: each cell against the baseline it changes one setting of (``baseline``:
    the baseline cell's student settings and preprocessing), and what the changes that help
    beyond the seed spread would add together if their gains added up."""
    cells = ablation.set_index("cell")
    if "baseline" not in cells.index:
        return []
    base = cells.loc["baseline"]
    readings, helping = [], 0.0
    for cell, row in cells.drop("baseline").iterrows():
        gain = row["roc_auc_mean"] - base["roc_auc_mean"]
        spread = _spread(row["roc_auc_std"], base["roc_auc_std"])
        change = f"{row['factor']} {row['value']} instead of {baseline.get(row['factor'], 'the baseline')}"
        if gain > spread:
            helping += gain
        readings.append(
            f"{cell}: student test AUC {row['roc_auc_mean']:.3f} against the baseline's "
            f"{base['roc_auc_mean']:.3f} ({gain:+.3f}, {_seeds(row['seeds'])}, spread "
            f"{spread:.3f}): {_effect(gain, spread, change)}."
        )
    readings.append(
        f"the changes that raise the test AUC beyond the seed spread add {helping:+.3f} together "
        "if their gains add up (each was measured alone)."
    )
    return readings


def target_reading(run: Mapping[str, Any], target: float) -> str | None:
    """The student's test AUC against the issue's target, and int8's distance from it."""
    evals = run["evals"]
    if "student" not in evals:
        return None
    auc = evals["student"]["metrics"]["roc_auc"]
    verdict = "reaches" if auc >= target else "falls short of"
    text = f"the student's test AUC {auc:.3f} {verdict} the target {target:.2f}"
    if "student_int8" in evals:
        gap = evals["student_int8"]["metrics"]["roc_auc"] - auc
        text += f"; the int8 model's AUC differs from it by {gap:+.4f}"
    return text + "."


def threshold_reading(
    evaluation: Mapping[str, Any], calibration: Mapping[str, Any] | None = None
) -> str | None:
    """Flag a default threshold that leaves the malignant class almost undetected, and say
    what the validation-chosen threshold does instead."""
    metrics = evaluation["metrics"]
    if metrics["sensitivity"] >= 0.5:
        return None
    malignant = (metrics["tp"] + metrics["fn"]) / metrics["n"]
    text = (
        f"at the threshold {evaluation['threshold']} the student finds only "
        f"{metrics['sensitivity']:.1%} of malignant lesions ({malignant:.0%} of the test "
        "images are malignant): its ranking (AUC) is usable, that threshold is not"
    )
    if calibration is None:
        return text + "."
    return text + (
        f"; the validation-chosen threshold {calibration['threshold']:.3f} finds "
        f"{calibration['test']['sensitivity']:.1%} at specificity "
        f"{calibration['test']['specificity']:.1%}."
    )


def _student_eval(run: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if run is None or "student" not in run["evals"]:
        return None
    return run["evals"]["student"]


def pair_readings(
    runs: Sequence[Mapping[str, Any]], loaded: Mapping[str, Mapping[str, Any] | None]
) -> list[str]:
    """Readings that compare two runs: split inflation, distillation at the full budget,
    a larger training budget."""
    readings = []
    for run in runs:
        for key in COMPARISONS:
            if key not in run:
                continue
            this, other = _student_eval(loaded[run["name"]]), _student_eval(loaded[run[key]])
            if this is None or other is None:
                continue
            a, b = this["metrics"]["roc_auc"], other["metrics"]["roc_auc"]
            (a_low, a_high), (b_low, b_high) = this["intervals"]["roc_auc"], other["intervals"]["roc_auc"]
            overlap = "the intervals overlap" if a_low <= b_high and b_low <= a_high else "the intervals do not overlap"
            label = next(r["label"] for r in runs if r["name"] == run[key])
            if key == "compare_split_with":
                readings.append(
                    f"- Split: the image-level split changes the student's test AUC by {a - b:+.3f} "
                    f"({a:.3f} against {b:.3f} lesion-grouped, {label}; {overlap})."
                )
            elif key == "compare_distillation_with":
                readings.append(
                    f"- Distillation at the full budget, one seed: student test AUC {b:.3f} with "
                    f"distillation, {a:.3f} without ({b - a:+.3f}; {overlap})."
                )
            else:
                readings.append(
                    f"- Budget: {run['label']} gives student test AUC {a:.3f} against {b:.3f} "
                    f"for {label} ({a - b:+.3f}; {overlap})."
                )
    return readings


def paper_readings(runs: Sequence[Mapping[str, Any]], loaded: Mapping[str, Any]) -> list[str]:
    """Each run's student accuracy and MCC beside the paper's for the same dataset."""
    readings = []
    for run in runs:
        student = _student_eval(loaded[run["name"]])
        dataset = run.get("paper_dataset")
        if student is None or dataset is None:
            continue
        accuracy, mcc = PAPER_FIGURES["student"][dataset]
        ours = student["metrics"]
        readings.append(
            f"- Paper ({dataset}, image-level split, 224 px, pretrained teacher): student accuracy "
            f"{accuracy:.4f}, MCC {mcc:.4f}; ours ({run['label']}): accuracy "
            f"{ours['accuracy']:.4f}, MCC {ours['mcc']:.4f}, ROC AUC {ours['roc_auc']:.3f}."
        )
    return readings
