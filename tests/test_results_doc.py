"""docs/results.md is generated from run outputs: tables, readings, missing runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from skinkd.metrics import evaluate_model, write_evaluation
from skinkd.results_doc import distillation_reading, main, render


def fake_run(results, name, auc_shift, ablation=None):
    rng = np.random.default_rng(len(name))
    labels = np.arange(200) % 2
    run = results / name
    (run / "eval").mkdir(parents=True)
    for model in ("teacher", "student"):
        logits = np.stack([np.zeros(200), labels * auc_shift + rng.normal(0, 1, 200)], axis=1)
        write_evaluation(evaluate_model(model, labels, logits, 0.5, 50, 0), run / "eval" / f"{model}.json")
    (run / "data").mkdir()
    pd.DataFrame({"group_by": ["lesion"], "lesions_crossing_splits": [0]}).to_csv(
        run / "data/leakage.csv", index=False
    )
    (run / "benchmarks").mkdir()
    (run / "benchmarks/student_train.tsv").write_text("s\th:m:s\n120.0\t0:02:00\n")
    if ablation is not None:
        (run / "ablation").mkdir()
        ablation.to_csv(run / "ablation/ablation.csv", index=False)
    return json.loads((run / "eval/student.json").read_text())


def ablation_table(with_kd, without, spread):
    return pd.DataFrame(
        {
            "cell": ["baseline", "alpha-1.0"],
            "seeds": [3, 3],
            "roc_auc_mean": [with_kd, without],
            "roc_auc_std": [spread, spread],
            "accuracy_mean": [0.8, 0.79],
            "accuracy_std": [0.01, 0.01],
        }
    )


def test_distillation_reading_compares_the_gain_with_the_seed_spread():
    assert "helps by more than" in distillation_reading(ablation_table(0.85, 0.80, 0.01))
    assert "hurts by more than" in distillation_reading(ablation_table(0.80, 0.85, 0.01))
    assert "within the seed spread" in distillation_reading(ablation_table(0.81, 0.80, 0.02))
    assert distillation_reading(None) is None


def test_render_tabulates_runs_reads_the_split_and_lists_missing_runs(tmp_path):
    grouped = fake_run(tmp_path, "grouped", 1.0, ablation_table(0.85, 0.80, 0.01))
    leaky = fake_run(tmp_path, "leaky", 3.0)
    runs = [
        {"name": "grouped", "label": "Grouped", "command": "cmd-a"},
        {"name": "leaky", "label": "Leaky", "command": "cmd-b", "compare_split_with": "grouped"},
        {"name": "absent", "label": "Absent", "command": "cmd-c"},
    ]
    text = render(runs, tmp_path)
    auc = grouped["metrics"]["roc_auc"]
    low, high = grouped["intervals"]["roc_auc"]
    assert f"| student | {auc:.3f} [{low:.3f}, {high:.3f}]" in text
    assert "`cmd-a`: 2.0 min of job time, 200 test images." in text
    inflation = leaky["metrics"]["roc_auc"] - auc
    assert f"by {inflation:+.3f} against the lesion-grouped split" in text
    assert "Not run yet: `cmd-c`." in text
    assert "0.850 with distillation, 0.800 without (+0.050" in text


def test_main_writes_the_document(tmp_path):
    fake_run(tmp_path, "only", 2.0)
    runs = tmp_path / "runs.yaml"
    runs.write_text("runs:\n  - {name: only, label: Only, command: make run}\n")
    out = tmp_path / "results.md"
    main(["--runs", str(runs), "--results", str(tmp_path), "--out", str(out)])
    assert out.read_text().startswith("# Results")


def test_threshold_reading_flags_a_blind_default_threshold():
    from skinkd.results_doc import threshold_reading

    labels = np.array([0] * 80 + [1] * 20)
    blind = np.stack([np.zeros(100), np.where(labels == 1, -0.5, -3.0)], axis=1)
    evaluation = evaluate_model("student", labels, blind, 0.5, 20, 0)
    text = threshold_reading(evaluation)
    assert "finds only 0.0% of malignant lesions (20% of the test images" in text
    sighted = np.stack([np.zeros(100), np.where(labels == 1, 2.0, -2.0)], axis=1)
    assert threshold_reading(evaluate_model("student", labels, sighted, 0.5, 20, 0)) is None
