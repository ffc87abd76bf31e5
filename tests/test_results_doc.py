"""docs/results.md is generated from run outputs: tables, readings, missing runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from skinkd.evaluate.metrics import evaluate_model, write_evaluation
from skinkd.runs.readings import addition_reading, cell_reading, teacher_gap_reading
from skinkd.runs.results_doc import main, render, seeds_phrase


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
    calibration = {"threshold": 0.25, "target_sensitivity": 0.9, "test_ece": 0.04,
                   "test": {"sensitivity": 0.88, "specificity": 0.6}}  # fmt: skip
    (run / "eval/calibration.json").write_text(json.dumps(calibration))
    (run / "export").mkdir()
    (run / "export/model_card.json").write_text(json.dumps({"image_size": 64}))
    if ablation is not None:
        (run / "ablation/cells/baseline").mkdir(parents=True)
        ablation.to_csv(run / "ablation/ablation.csv", index=False)
        for name, epochs in (("baseline", 6), ("alpha-1.0", 6)):
            (run / f"ablation/cells/{name}").mkdir(parents=True, exist_ok=True)
            cell = {"train_images": 2000, "student": {"epochs": epochs}, "preprocessing": "all"}
            (run / f"ablation/cells/{name}/seed_0.json").write_text(json.dumps(cell))
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


def test_ablation_table_shows_the_validation_columns_a_setting_is_chosen_on(tmp_path):
    from skinkd.runs.results_doc import ablation_rows

    table = ablation_table(0.85, 0.80, 0.01)
    assert ablation_rows(table, {"baseline": 6})[1] == (
        "| cell | epochs | seeds | test ROC AUC mean ± sd | accuracy mean ± sd | paper HAM10000 acc |"
    )
    table = table.assign(val_roc_auc_mean=[0.9, 0.88], val_roc_auc_std=[0.004, 0.006],
                         val_shifted_roc_auc_mean=[0.82, 0.84], val_shifted_roc_auc_std=[0.01, 0.02],
                         val_shift_drop_mean=[0.08, 0.04])  # fmt: skip
    rows = ablation_rows(table, {"baseline": 6, "alpha-1.0": 6})
    assert rows[1].startswith("| cell | epochs | seeds | val ROC AUC | val under shifts (drop) | test ROC AUC")
    assert rows[4] == "| alpha-1.0 | 6 | 3 | 0.880 ± 0.006 | 0.840 ± 0.020 (0.040) | 0.800 ± 0.010 | 0.790 ± 0.010 |  |"
    # External sets' columns follow the test split's; a cell not scored on one shows a dash.
    rows = ablation_rows(table.assign(ph2_roc_auc_mean=[0.7, float("nan")], ph2_roc_auc_std=[0.02, float("nan")]),
                         {"baseline": 6})  # fmt: skip
    assert "| test ROC AUC mean ± sd | ph2 ROC AUC | accuracy mean ± sd |" in rows[1]
    assert rows[3].startswith("| baseline | 6 | 3 | 0.900 ± 0.004 | 0.820 ± 0.010 (0.080) | 0.850 ± 0.010 | 0.700 ± 0.020 |")
    assert "| 0.800 ± 0.010 | – | 0.790 ± 0.010 |" in rows[4]


def test_a_cell_is_chosen_on_its_validation_columns_against_the_seed_spread():
    from skinkd.runs.readings import validation_choices

    def table(val, shifted):
        return pd.DataFrame({
            "cell": ["baseline", "photometric-True"], "seeds": [3, 3],
            "val_roc_auc_mean": [0.90, val], "val_roc_auc_std": [0.005, 0.005],
            "val_shifted_roc_auc_mean": [0.80, shifted], "val_shifted_roc_auc_std": [0.01, 0.01],
        })  # fmt: skip

    [robust] = validation_choices(table(0.898, 0.85))
    assert robust.startswith("choice on validation, photometric-True (3 seeds): validation AUC 0.898 against 0.900")
    assert "under shifts 0.850 against 0.800 (+0.050, spread 0.010)" in robust
    assert robust.endswith("worth adopting: it gains beyond the seed spread and loses nowhere beyond it.")
    assert validation_choices(table(0.88, 0.85))[0].endswith("not worth adopting: it loses beyond the seed spread.")
    assert validation_choices(table(0.90, 0.805))[0].endswith("not worth adopting: within the seed spread.")
    assert validation_choices(ablation_table(0.85, 0.8, 0.01)) == []
    # A one-seed cell (a long curve) has no spread of its own: the baseline's is the yardstick.
    one_seed = table(0.92, 0.81).assign(seeds=[3, 1], val_roc_auc_std=[0.005, float("nan")],
                                        val_shifted_roc_auc_std=[0.01, float("nan")])  # fmt: skip
    [long] = validation_choices(one_seed)
    assert "(1 seed): validation AUC 0.920 against 0.900 (+0.020, spread 0.005)" in long
    assert long.endswith("worth adopting: it gains beyond the seed spread and loses nowhere beyond it.")
    both_one = one_seed.assign(seeds=[1, 1], val_roc_auc_std=float("nan"), val_shifted_roc_auc_std=float("nan"))
    assert validation_choices(both_one)[0].endswith("(+0.010, no spread): not judged: one seed each, no spread to judge by.")


def test_distillation_reading_compares_the_gain_with_the_seed_spread():
    def distillation_reading(table):
        return cell_reading(table, "alpha-1.0", "distillation")

    assert "dropping distillation lowers the test AUC by more than" in distillation_reading(ablation_table(0.85, 0.80, 0.01))
    assert "dropping distillation raises the test AUC by more than" in distillation_reading(ablation_table(0.80, 0.85, 0.01))
    assert "within the seed spread" in distillation_reading(ablation_table(0.81, 0.80, 0.02))
    assert distillation_reading(None) is None
    table = ablation_table(0.80, 0.85, 0.01).replace({"alpha-1.0": "preprocessing-none"})
    assert cell_reading(table, "preprocessing-none", "the stages") == (
        "student test AUC 0.800 with the stages, 0.850 without (-0.050, 3 seeds, spread 0.010): "
        "dropping the stages raises the test AUC by more than the seed spread (5.0x)."
    )
    assert cell_reading(table, "alpha-1.0", "distillation") is None


def test_addition_reading_credits_the_cell_that_adds_something():
    table = ablation_table(0.80, 0.86, 0.02).replace({"alpha-1.0": "distillation-consistent"})
    assert addition_reading(table, "distillation-consistent", "consistency") == (
        "student test AUC 0.860 with consistency, 0.800 without (+0.060, 3 seeds, spread "
        "0.020): adding consistency raises the test AUC by more than the seed spread (3.0x)."
    )
    worse = ablation_table(0.86, 0.80, 0.02).replace({"alpha-1.0": "classes-dx"})
    assert "adding seven classes lowers the test AUC" in addition_reading(
        worse, "classes-dx", "seven classes"
    )
    assert addition_reading(table, "classes-dx", "seven classes") is None


def test_teacher_gap_reading_says_which_side_the_teacher_is_on(tmp_path):
    fake_run(tmp_path, "run", 1.0)
    from skinkd.runs.results_doc import load_run

    run = load_run(tmp_path, "run")
    teacher = run["evals"]["teacher"]["metrics"]["roc_auc"]
    student = run["evals"]["student"]["metrics"]["roc_auc"]
    reading = teacher_gap_reading(run)
    assert f"teacher test AUC {teacher:.3f}" in reading
    assert f"(gap {teacher - student:+.3f})" in reading
    assert ("ahead of" in reading) == (teacher > student)


def test_render_tabulates_runs_reads_the_split_and_lists_missing_runs(tmp_path):
    grouped = fake_run(tmp_path, "grouped", 1.0, ablation_table(0.85, 0.80, 0.01))
    leaky = fake_run(tmp_path, "leaky", 3.0)
    runs = [
        {"name": "grouped", "label": "Grouped", "targets": ["all"], "configfiles": ["a.yaml"], "target_auc": 0.99},
        {"name": "leaky", "label": "Leaky", "targets": ["all"], "configfiles": ["a.yaml", "b.yaml"],
         "compare_split_with": "grouped"},
        {"name": "nokd", "label": "No KD", "targets": ["all"], "configfiles": ["a.yaml", "c.yaml"],
         "compare_distillation_with": "grouped", "paper_dataset": "ham10000"},
        {"name": "long", "label": "Long", "targets": ["all"], "configfiles": ["a.yaml", "d.yaml"],
         "compare_budget_with": "grouped"},
        {"name": "absent", "label": "Absent", "targets": ["all", "ablation"], "configfiles": []},
    ]  # fmt: skip
    nokd = fake_run(tmp_path, "nokd", 0.5)
    long = fake_run(tmp_path, "long", 4.0)
    text = render(runs, tmp_path, ["A note."])
    auc = grouped["metrics"]["roc_auc"]
    low, high = grouped["intervals"]["roc_auc"]
    assert f"| student | {auc:.3f} [{low:.3f}, {high:.3f}]" in text
    assert "`snakemake all --cores 2 --configfile a.yaml`: 2.0 min wall (2.0 min of job time), 200 test images." in text
    inflation = leaky["metrics"]["roc_auc"] - auc
    assert f"changes the student's test AUC by {inflation:+.3f}" in text
    gain = auc - nokd["metrics"]["roc_auc"]
    assert f"{auc:.3f} with distillation, {nokd['metrics']['roc_auc']:.3f} without ({gain:+.3f}" in text
    longer = long["metrics"]["roc_auc"]
    assert f"- Budget: Long gives student test AUC {longer:.3f} against {auc:.3f} for Grouped ({longer - auc:+.3f};" in text
    assert f"ours (No KD): accuracy {nokd['metrics']['accuracy']:.4f}" in text
    assert "Not run yet: `snakemake all ablation --cores 2`." in text
    assert "## Notes\n\n- A note." in text
    assert f"- Grouped: the student's test AUC {auc:.3f} falls short of the target 0.99." in text
    assert "trains the student on 2000 training images at 64 px for 6 epochs" in text
    assert "| alpha-1.0 | 6 | 3 | 0.800 ± 0.010 |" in text
    assert "the largest changes of mean test AUC from the baseline's 0.850: alpha-1.0 -0.050." in text
    assert "Deployment threshold (model card): 0.250, chosen on the validation split for sensitivity 0.90" in text
    assert "sensitivity 0.880 and specificity 0.600" in text
    assert "0.850 with distillation, 0.800 without (+0.050" in text


def test_a_factor_study_reads_each_cell_against_the_baseline(tmp_path):
    run = tmp_path / "factors"
    baseline = {"optimizer": "adafactor", "learning_rate": 0.002, "batch_size": 64, "epochs": 15}
    cells = {  # cell: (factor, value, mean, sd)
        "baseline": ("baseline", "", 0.820, 0.004),
        "preprocessing-none": ("preprocessing", "none", 0.840, 0.005),
        "optimizer-adam": ("optimizer", "adam", 0.830, 0.002),
        "epochs-20": ("epochs", "20", 0.822, 0.006),
    }
    for cell, (factor, value, _, _) in cells.items():
        settings = {**baseline, factor: value} if factor in baseline else baseline
        (run / f"ablation/cells/{cell}").mkdir(parents=True)
        result = {"train_images": 7010, "student": settings, "preprocessing": "all"}
        (run / f"ablation/cells/{cell}/seed_0.json").write_text(json.dumps(result))
    pd.DataFrame(
        [{"cell": cell, "factor": factor, "value": value, "seeds": 3, "roc_auc_mean": mean, "roc_auc_std": sd,
          "accuracy_mean": 0.8, "accuracy_std": 0.01} for cell, (factor, value, mean, sd) in cells.items()]
    ).to_csv(run / "ablation/ablation.csv", index=False)  # fmt: skip
    (run / "benchmarks/ablation").mkdir(parents=True)
    (run / "benchmarks/ablation/baseline.tsv").write_text("s\th:m:s\n600.0\t0:10:00\n")
    runs = [{"name": "factors", "label": "Factors", "targets": ["ablation"], "configfiles": ["a.yaml"]}]
    text = render(runs, tmp_path)
    assert "`snakemake ablation --cores 2 --configfile a.yaml`: 10.0 min wall (10.0 min of job time), the ablation grid only." in text
    assert "| model | ROC AUC" not in text and "Not run yet" not in text
    assert "trains the student on 7010 training images for 15 epochs in the baseline" in text
    assert "| preprocessing-none | 15 | 3 | 0.840 ± 0.005 |" in text
    assert ("- Factors: preprocessing-none: student test AUC 0.840 against the baseline's 0.820 (+0.020, 3 "
            "seeds, spread 0.005): preprocessing none instead of all raises the test AUC by more than the "
            "seed spread (4.0x).") in text  # fmt: skip
    assert "optimizer adam instead of adafactor raises the test AUC by more than the seed spread (2.5x)" in text
    assert "epochs-20: student test AUC 0.822 against the baseline's 0.820 (+0.002, 3 seeds, spread 0.006): the difference is within the seed spread." in text
    assert "- Factors: the changes that raise the test AUC beyond the seed spread add +0.030 together" in text


def test_main_writes_the_document(tmp_path):
    fake_run(tmp_path, "only", 2.0)
    runs = tmp_path / "runs.yaml"
    runs.write_text("runs:\n  - {name: only, label: Only, configfiles: []}\n")
    out = tmp_path / "results.md"
    main(["--runs", str(runs), "--results", str(tmp_path), "--out", str(out)])
    assert out.read_text().startswith("# Results")


def test_threshold_reading_flags_a_blind_default_threshold():
    from skinkd.runs.readings import threshold_reading

    labels = np.array([0] * 80 + [1] * 20)
    blind = np.stack([np.zeros(100), np.where(labels == 1, -0.5, -3.0)], axis=1)
    evaluation = evaluate_model("student", labels, blind, 0.5, 20, 0)
    text = threshold_reading(evaluation)
    assert "finds only 0.0% of malignant lesions (20% of the test images" in text
    sighted = np.stack([np.zeros(100), np.where(labels == 1, 2.0, -2.0)], axis=1)
    assert threshold_reading(evaluate_model("student", labels, sighted, 0.5, 20, 0)) is None


def test_external_set_is_tabulated_with_its_overlap_and_read(tmp_path):
    from skinkd.evaluate.external import evaluate_external

    fake_run(tmp_path, "run", 1.0)
    rng = np.random.default_rng(3)
    labels = np.arange(100) % 2
    prob = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 100), 0, 1)
    seen = np.arange(100) < 60
    models = {
        model: evaluate_external(model, labels, prob, {"validation": 0.25, "0.5": 0.5},
                                 seen=seen, n_boot=50, seed=0)  # fmt: skip
        for model in ("student", "teacher")
    }
    external = {
        "set": "kaggle", "images": 100, "rejected": 2, "thresholds": {"student": 0.25, "teacher": 0.3},
        # Stored in a splits file's order; the sentence puts train, val, test.
        "overlap": {"images": 100, "identical": 4, "match_test": 12, "match_val": 10, "match_train": 50, "seen": 60},
        "models": models,
    }  # fmt: skip
    (tmp_path / "run/external/kaggle").mkdir(parents=True)
    (tmp_path / "run/external/kaggle/metrics.json").write_text(json.dumps(external))
    text = render([{"name": "run", "label": "Run", "targets": ["all"], "configfiles": []}], tmp_path)
    assert "External validation on `kaggle`: 100 images (2 rejected); 4 byte-identical" in text
    assert "they match 50 train, 10 val, 12 test images; 60 match a training or validation" in text
    whole = models["student"]["all"]["thresholds"]["validation"]
    unseen = models["student"]["without_overlap"]["thresholds"]["validation"]
    low, high = whole["intervals"]["roc_auc"]
    assert f"| student | 0.250 | 100 | {whole['metrics']['roc_auc']:.3f} [{low:.3f}, {high:.3f}] |" in text
    gap = unseen["metrics"]["roc_auc"] - whole["metrics"]["roc_auc"]
    assert (f"on `kaggle`, 60 of 100 images match a training or validation image of the run; "
            f"the student's ROC AUC is {whole['metrics']['roc_auc']:.3f} on the whole set and "
            f"{unseen['metrics']['roc_auc']:.3f} on the 40 unseen images ({gap:+.3f}).") in text  # fmt: skip


def test_an_archived_run_renders_as_its_outputs_did_once_they_are_gone(tmp_path):
    import shutil

    from skinkd.runs.archive import read_archive, write_archive
    from skinkd.runs.results_doc import load_run

    table = ablation_table(0.85, 0.80, 0.01)
    fake_run(tmp_path / "results", "grouped", 1.0, table)
    epochs = pd.DataFrame({"cell": ["baseline", "baseline"], "factor": "baseline", "value": "",
                           "epochs": [10, 30], "seeds": 1, "val_roc_auc_mean": [0.8, 0.9],
                           "val_roc_auc_std": np.nan, "test_roc_auc_mean": [0.7, 0.85],
                           "test_roc_auc_std": np.nan})  # fmt: skip
    epochs.to_csv(tmp_path / "results/grouped/ablation/epochs.csv", index=False)
    runs = [{"name": "grouped", "label": "Grouped", "targets": ["all"], "configfiles": ["a.yaml"]}]
    live = render(runs, tmp_path / "results")
    record = {"name": "grouped", "finished": "2026-12-07T11:00:00+0000", "commit": "abc123"}
    write_archive(load_run(tmp_path / "results", "grouped"), record, tmp_path / "docs/grouped.json")
    shutil.rmtree(tmp_path / "results")
    assert "Not run yet" in render(runs, tmp_path / "results")
    archived = render(runs, tmp_path / "results", archive=tmp_path / "docs")
    # The same document, plus when and with which code the run finished.
    assert archived.replace(" Finished 2026-12-07T11:00:00+0000 at commit abc123.", "") == live
    assert "| baseline | 10 | 1 | 0.800 | 0.700 |" in archived
    restored = read_archive(tmp_path / "docs/grouped.json")
    pd.testing.assert_frame_equal(restored["ablation"], table, check_dtype=False)
    assert read_archive(tmp_path / "docs/absent.json") is None


def test_the_shift_summary_is_tabulated_per_split_and_model(tmp_path):
    fake_run(tmp_path, "run", 1.0)
    for split in ("test", "val"):
        summary = {"split": split, "images": 500, "models": {"student": {
            "clean_roc_auc": 0.9, "mean_shifted_roc_auc": 0.85, "drop": 0.05, "per_shift": {},
            "worst": {"shift": "vignetting", "severity": 5, "roc_auc": 0.7}}}}  # fmt: skip
        (tmp_path / f"run/shifts/{split}").mkdir(parents=True)
        (tmp_path / f"run/shifts/{split}/summary.json").write_text(json.dumps(summary))
    runs = [{"name": "run", "label": "Run", "targets": ["all"], "configfiles": []}]
    text = render(runs, tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| val |") or line.startswith("| test |")]
    assert rows == ["| val | 500 | student | 0.900 | 0.850 | 0.050 | vignetting 5: 0.700 |",
                    "| test | 500 | student | 0.900 | 0.850 | 0.050 | vignetting 5: 0.700 |"]  # fmt: skip


def test_seeds_phrase_names_the_usual_count_and_points_at_the_exceptions():
    assert seeds_phrase(pd.Series([3, 3, 3])) == "3 seeds"
    assert seeds_phrase(pd.Series([3, 1, 3, 1, 3])) == "3 seeds (2 cells fewer or more: the seeds column)"


def test_grid_progress_tabulates_the_current_cells_and_leaves_stale_ones_out(tmp_path):
    import os

    from skinkd.runs.grid_progress import render_progress

    run = tmp_path / "results" / "grid"
    (run / "teacher").mkdir(parents=True)
    (run / "teacher" / "soft_labels.npz").write_bytes(b"")

    def cell(name, seed, val, test, age=0):
        path = run / "ablation" / "cells" / name / f"seed_{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        scores = {"roc_auc": test, "accuracy": 0.8, "mcc": 0.5, "balanced_accuracy": 0.7}
        path.write_text(json.dumps({
            "cell": name, "factor": name.split("-")[0], "value": name.split("-")[-1], "seed": seed,
            "student": {"epochs": 20}, "train_seconds": 10.0, "test": scores, "val": {"roc_auc": val},
            "milestones": [{"epochs": 10, "val_roc_auc": val - 0.01, "test_roc_auc": test - 0.01},
                           {"epochs": 20, "val_roc_auc": val, "test_roc_auc": test}],
        }))  # fmt: skip
        stamp = (run / "teacher" / "soft_labels.npz").stat().st_mtime + age
        os.utime(path, (stamp, stamp))

    assert "no cell finished yet" in render_progress(run)
    for seed, val in ((1, 0.90), (2, 0.91)):
        cell("baseline", seed, val, val)
        cell("image_size-128", seed, val + 0.03, val + 0.02)
    cell("image_size-64", 1, 0.99, 0.99, age=-60)  # trained before the soft labels it needs
    text = render_progress(run)
    assert text.startswith(f"{run}: 4 cell-seeds finished; 1 stale results left out")
    assert "| image_size-128 | 20 | 2 | 0.935 ± 0.007 |" in text and "image_size-64" not in text
    assert "- choice on validation, image_size-128 (2 seeds): validation AUC 0.935 against 0.905" in text
    assert "| baseline | 10 | 2 | 0.895 ± 0.007 | 0.895 ± 0.007 |" in text


def test_a_run_timed_beside_other_work_says_so(tmp_path):
    from skinkd.runs.archive import write_archive
    from skinkd.runs.results_doc import load_run

    fake_run(tmp_path / "results", "grouped", 1.0, ablation_table(0.85, 0.80, 0.01))
    runs = [{"name": "grouped", "label": "Grouped", "targets": ["all"], "configfiles": ["a.yaml"]}]
    run = load_run(tmp_path / "results", "grouped")
    for share, said in ((0.45, True), (0.03, False), (None, False)):
        record = {"name": "grouped", "finished": "2026-12-08T02:00:00+0000", "commit": "abc123",
                  "other_cpu_share": share}  # fmt: skip
        write_archive(run, record, tmp_path / "docs/grouped.json")
        text = render(runs, tmp_path / "absent", archive=tmp_path / "docs")
        sentence = "While it ran, other processes took 45% of the machine's CPU, so its times above"
        assert (sentence in text) is said
        assert ("not measured alone" in text) is said
