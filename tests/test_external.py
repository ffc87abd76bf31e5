"""External validation: labelled-set readers, overlap with a run's images, `skinkd evaluate`."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import keras
import numpy as np
import pytest

from conftest import require_shared
from helpers import exported_student, rgb_array, write_rgb
from skinkd.data.hashing import inspect_image
from skinkd.data.images import read_image
from skinkd.data.labelled import ISIC_COLUMNS, detect_layout, read_labelled_set
from skinkd.edge.cli import main
from skinkd.edge.evaluate import format_report
from skinkd.edge.predict import Predictor, predict_paths
from skinkd.errors import ConfigError, DataError
from skinkd.evaluate.external import (
    evaluate_external,
    overlap_counts,
    overlap_rows,
    read_reference,
)
from skinkd.evaluate.metrics import classification_metrics

SIZE = 32


def blob(seed, height=150, width=200):
    """A smooth random RGB image. Unlike rgb_array's gradients, every seed has its own
    structure, so unrelated seeds have perceptual hashes far apart (about 20 bits)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // 10 + 1, width // 10 + 1, 3)).astype(np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(image, (0, 0), 3)


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def write_table(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------- labelled sets: folders


def test_folder_layout_reads_class_folders(tmp_path):
    root = tmp_path / "set"
    write_rgb(root / "benign" / "a.jpg", rgb_array(seed=1))
    write_rgb(root / "benign" / "deeper" / "b.png", rgb_array(seed=2))
    write_rgb(root / "malignant" / "c.jpg", rgb_array(seed=3))
    write_rgb(root / "malignant" / ".hidden.jpg", rgb_array(seed=4))
    (root / "malignant" / "notes.txt").write_text("not an image")
    found = read_labelled_set("folder", root)
    assert [(i.image_id, i.label) for i in found.images] == [
        ("benign/a.jpg", 0), ("benign/deeper/b.png", 0), ("malignant/c.jpg", 1),
    ]  # fmt: skip
    assert [i.path for i in found.images] == [
        str(root / "benign" / "a.jpg"), str(root / "benign" / "deeper" / "b.png"),
        str(root / "malignant" / "c.jpg"),
    ]  # fmt: skip
    assert found.rejected == []


@pytest.mark.parametrize("empty_test", ["bare", "empty class folders"])
def test_folder_layout_train_test_with_an_empty_test_division(tmp_path, empty_test):
    root = tmp_path / "set"
    write_rgb(root / "train" / "benign" / "a.jpg", rgb_array(seed=1))
    write_rgb(root / "train" / "malignant" / "b.jpg", rgb_array(seed=2))
    (root / "test").mkdir()
    if empty_test == "empty class folders":
        (root / "test" / "benign").mkdir()
        (root / "test" / "malignant").mkdir()
    found = read_labelled_set("folder", root)
    assert [(i.image_id, i.label) for i in found.images] == [
        ("train/benign/a.jpg", 0), ("train/malignant/b.jpg", 1),
    ]  # fmt: skip


def test_folder_layout_train_and_test_both_read(tmp_path):
    root = tmp_path / "set"
    write_rgb(root / "train" / "benign" / "a.jpg", rgb_array(seed=1))
    write_rgb(root / "train" / "malignant" / "b.jpg", rgb_array(seed=2))
    write_rgb(root / "test" / "benign" / "c.jpg", rgb_array(seed=3))
    write_rgb(root / "test" / "malignant" / "d.jpg", rgb_array(seed=4))
    found = read_labelled_set("folder", root)
    assert [(i.image_id, i.label) for i in found.images] == [
        ("train/benign/a.jpg", 0), ("train/malignant/b.jpg", 1),
        ("test/benign/c.jpg", 0), ("test/malignant/d.jpg", 1),
    ]  # fmt: skip


def test_folder_layout_errors(tmp_path):
    only_benign = tmp_path / "benign_only"
    write_rgb(only_benign / "benign" / "a.jpg", rgb_array(seed=1))
    with pytest.raises(DataError, match="no malignant images"):
        read_labelled_set("folder", only_benign)
    unknown = tmp_path / "unknown"
    write_rgb(unknown / "benign" / "a.jpg", rgb_array(seed=1))
    write_rgb(unknown / "nevus" / "b.jpg", rgb_array(seed=2))
    with pytest.raises(DataError, match="unknown class folder 'nevus'"):
        read_labelled_set("folder", unknown)
    empty_class = tmp_path / "empty_class"
    write_rgb(empty_class / "benign" / "a.jpg", rgb_array(seed=1))
    (empty_class / "malignant").mkdir()
    with pytest.raises(DataError, match="empty class folder"):
        read_labelled_set("folder", empty_class)


# ---------------------------------------------------------------- labelled sets: image,label CSV


@pytest.fixture
def csv_set(tmp_path):
    """A labels CSV with five good rows (lines 2-6) and seven bad ones (lines 7-13)."""
    root = tmp_path / "set"
    for k, name in enumerate(["a.jpg", "b.jpg", "sub/c.png", "sub/d.jpg", "e.jpg"]):
        write_rgb(root / name, rgb_array(seed=k))
    outside = write_rgb(tmp_path / "outside" / "x.jpg", rgb_array(seed=9))
    os.symlink(outside, root / "link.jpg")
    labels = write_lines(root / "labels.csv", [
        "image,label",
        "a.jpg,benign",
        "b.jpg,Malignant",
        "sub/c.png,0",
        "sub/d.jpg,1",
        "e.jpg,BENIGN",
        "gone.jpg,benign",
        "b.jpg,maybe",
        "../outside/x.jpg,benign",
        f"{(root / 'a.jpg').resolve()},benign",
        "link.jpg,malignant",
        "a.jpg,benign,extra",
        "sub/c.png,benign",
    ])  # fmt: skip
    bad = {
        7: "does not exist",
        8: "unknown label 'maybe'",
        9: "leaves",
        10: "absolute",
        11: "leaves",
        12: "3 fields, the header has 2",
        13: "listed twice",
    }
    return SimpleNamespace(root=root, labels=labels, bad=bad)


def test_csv_layout_bad_rows_are_one_error_naming_file_and_line(csv_set):
    with pytest.raises(DataError) as caught:
        read_labelled_set("csv", csv_set.labels)
    message = str(caught.value)
    assert message.startswith("7 bad row(s):")
    for line, reason in csv_set.bad.items():
        shown = [text for text in message.splitlines() if f"{csv_set.labels}:{line}: " in text]
        assert len(shown) == 1 and reason in shown[0], (line, message)
    assert f"{csv_set.labels}:2:" not in message and f"{csv_set.labels}:6:" not in message
    assert "--on-bad-image skip" in message


def test_csv_layout_skip_keeps_good_rows_and_lists_rejected(csv_set):
    found = read_labelled_set("csv", csv_set.labels, on_bad_image="skip")
    assert [(i.image_id, i.label) for i in found.images] == [
        ("a.jpg", 0), ("b.jpg", 1), ("sub/c.png", 0), ("sub/d.jpg", 1), ("e.jpg", 0),
    ]  # fmt: skip
    assert [i.path for i in found.images] == [
        str(csv_set.root / name) for name in ["a.jpg", "b.jpg", "sub/c.png", "sub/d.jpg", "e.jpg"]
    ]
    assert [where for where, _ in found.rejected] == [f"{csv_set.labels}:{line}" for line in csv_set.bad]
    for (_, reason), expected in zip(found.rejected, csv_set.bad.values(), strict=True):
        assert expected in reason


def test_csv_layout_paths_are_relative_to_the_csv_not_the_working_directory(tmp_path, monkeypatch):
    root = tmp_path / "deep" / "set"
    write_rgb(root / "imgs" / "a.jpg", rgb_array(seed=1))
    write_rgb(root / "imgs" / "b.jpg", rgb_array(seed=2))
    labels = write_lines(root / "labels.csv", ["image,label", "imgs/a.jpg,0", "imgs/b.jpg,1"])
    monkeypatch.chdir(tmp_path)
    found = read_labelled_set("csv", Path("deep/set/labels.csv"))
    assert [Path(i.path).resolve() for i in found.images] == [
        (root / "imgs" / "a.jpg").resolve(), (root / "imgs" / "b.jpg").resolve(),
    ]  # fmt: skip
    assert detect_layout(labels) == "csv"


def test_both_classes_must_remain(tmp_path):
    write_rgb(tmp_path / "a.jpg", rgb_array(seed=1))
    write_rgb(tmp_path / "b.jpg", rgb_array(seed=2))
    benign_only = write_lines(tmp_path / "benign.csv", ["image,label", "a.jpg,benign", "b.jpg,0"])
    with pytest.raises(DataError, match="no malignant images") as caught:
        read_labelled_set("csv", benign_only)
    assert str(benign_only) in str(caught.value)
    # Every malignant row rejected with skip: no malignant image remains either.
    skipped = write_lines(tmp_path / "skipped.csv", ["image,label", "a.jpg,benign", "gone.jpg,malignant"])
    with pytest.raises(DataError, match=r"no malignant images \(1 rows rejected\)"):
        read_labelled_set("csv", skipped, on_bad_image="skip")


def test_unknown_layout_or_mapping_is_a_config_error(tmp_path):
    labels = write_lines(tmp_path / "labels.csv", ["image,label"])
    with pytest.raises(ConfigError, match="layout: 'ham' is not one of folder, csv, isic, ph2"):
        read_labelled_set("ham", labels)
    with pytest.raises(ConfigError, match="mapping: 'strict' is not one of"):
        read_labelled_set("isic", labels, mapping="strict")


# ---------------------------------------------------------------- labelled sets: PH2


def test_ph2_labels_come_from_the_diagnosis_and_bad_rows_are_named(tmp_path):
    for k in range(1, 6):
        write_rgb(tmp_path / "images" / f"IMD{k:03d}.jpg", rgb_array(seed=k))
    labels = write_lines(tmp_path / "labels.csv", [
        "image_id,file,dx,malignant",
        "IMD001,images/IMD001.jpg,common_nevus,0",
        "IMD002,images/IMD002.jpg,atypical_nevus,0",
        "IMD003,images/IMD003.jpg,melanoma,1",
        "IMD004,images/IMD004.jpg,melanoma,0",
        "IMD005,images/IMD005.jpg,blue_nevus,0",
        "IMD006,images/IMD006.jpg,melanoma,1",
        "IMD007,../IMD007.jpg,melanoma,1",
    ])  # fmt: skip
    assert detect_layout(labels) == "ph2"
    found = read_labelled_set("ph2", labels, on_bad_image="skip")
    assert [(i.image_id, i.label, i.dx) for i in found.images] == [
        ("IMD001", 0, "common_nevus"), ("IMD002", 0, "atypical_nevus"), ("IMD003", 1, "melanoma")]  # fmt: skip
    reasons = dict(found.rejected)
    assert "contradicts dx 'melanoma'" in reasons[f"{labels}:5"]
    assert "unknown dx 'blue_nevus'" in reasons[f"{labels}:6"]
    assert "does not exist" in reasons[f"{labels}:7"]
    assert "leaves" in reasons[f"{labels}:8"]
    with pytest.raises(DataError, match=r"4 bad row\(s\)"):
        read_labelled_set("ph2", labels)


def test_the_shared_ph2_set_reads_as_its_readme_counts():
    labels = require_shared("ph2") / "labels.csv"
    found = read_labelled_set(detect_layout(labels), labels)
    assert len(found.images) == 200 and not found.rejected
    assert sum(i.label for i in found.images) == 40
    assert sorted({i.dx for i in found.images}) == ["atypical_nevus", "common_nevus", "melanoma"]


# ---------------------------------------------------------------- labelled sets: ISIC ground truth


def isic_row(image, diagnosis):
    return [image, *("1.0" if column == diagnosis else "0.0" for column in ISIC_COLUMNS)]


@pytest.fixture
def isic_set(tmp_path):
    """One image per diagnosis (lines 2-8) and four bad rows (lines 9-12)."""
    root = tmp_path / "isic"
    rows = [isic_row(f"ISIC_000000{k + 1}", dx) for k, dx in enumerate(ISIC_COLUMNS)]
    for k in range(1, 11):
        write_rgb(root / "Task3_Input" / f"ISIC_{k:07d}.jpg", rgb_array(seed=k))
    two_hot = ["ISIC_0000008", "1.0", "1.0", "0.0", "0.0", "0.0", "0.0", "0.0"]
    all_zero = ["ISIC_0000009", *["0.0"] * 7]
    not_number = ["ISIC_0000010", "x", "1.0", "0.0", "0.0", "0.0", "0.0", "0.0"]
    missing = isic_row("ISIC_0000011", "NV")
    labels = write_table(root / "GroundTruth.csv", ["image", *ISIC_COLUMNS],
                         [*rows, two_hot, all_zero, not_number, missing])  # fmt: skip
    bad = {9: "not one-hot", 10: "not one-hot", 11: "not a number", 12: "no image ISIC_0000011"}
    return SimpleNamespace(root=root, labels=labels, bad=bad)


@pytest.mark.parametrize(
    ("mapping", "malignant"),
    [("clinical", {"mel", "bcc", "akiec"}), ("paper", {"mel", "bcc", "akiec", "bkl", "vasc"})],
)
def test_isic_layout_maps_diagnoses(isic_set, mapping, malignant):
    found = read_labelled_set("isic", isic_set.labels, mapping=mapping, on_bad_image="skip")
    assert [i.image_id for i in found.images] == [f"ISIC_000000{k}" for k in range(1, 8)]
    assert [i.dx for i in found.images] == ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"]
    assert {i.dx: i.label for i in found.images} == {
        dx: int(dx in malignant) for dx in ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"]
    }
    assert [i.path for i in found.images] == [
        str(isic_set.root / "Task3_Input" / f"ISIC_000000{k}.jpg") for k in range(1, 8)
    ]
    assert [where for where, _ in found.rejected] == [f"{isic_set.labels}:{n}" for n in isic_set.bad]
    for (_, reason), expected in zip(found.rejected, isic_set.bad.values(), strict=True):
        assert expected in reason


def test_isic_layout_bad_rows_are_an_error_naming_the_line(isic_set):
    with pytest.raises(DataError) as caught:
        read_labelled_set("isic", isic_set.labels)
    message = str(caught.value)
    assert message.startswith("4 bad row(s):")
    for line, reason in isic_set.bad.items():
        shown = [text for text in message.splitlines() if f"{isic_set.labels}:{line}: " in text]
        assert len(shown) == 1 and reason in shown[0], (line, message)


def test_isic_layout_images_from_another_folder(tmp_path):
    labels = write_table(tmp_path / "gt" / "labels.csv", ["image", *ISIC_COLUMNS],
                         [isic_row("ISIC_0000001", "MEL"), isic_row("ISIC_0000002", "NV")])  # fmt: skip
    write_rgb(tmp_path / "pics" / "ISIC_0000001.jpg", rgb_array(seed=1))
    write_rgb(tmp_path / "pics" / "ISIC_0000002.png", rgb_array(seed=2))
    found = read_labelled_set("isic", labels, images=tmp_path / "pics")
    assert [(i.image_id, i.label, Path(i.path).name) for i in found.images] == [
        ("ISIC_0000001", 1, "ISIC_0000001.jpg"), ("ISIC_0000002", 0, "ISIC_0000002.png"),
    ]  # fmt: skip
    with pytest.raises(DataError, match="no image ISIC_0000001"):
        read_labelled_set("isic", labels)
    with pytest.raises(DataError, match="images folder does not exist"):
        read_labelled_set("isic", labels, images=tmp_path / "nowhere")


def test_detect_layout(tmp_path, isic_set):
    (tmp_path / "folder").mkdir()
    assert detect_layout(tmp_path / "folder") == "folder"
    assert detect_layout(write_lines(tmp_path / "l.csv", ["image,label", "a.jpg,0"])) == "csv"
    assert detect_layout(isic_set.labels) == "isic"
    other = write_lines(tmp_path / "other.csv", ["lesion_id,image_id,dx", "a,b,mel"])
    with pytest.raises(DataError, match="cannot tell the layout") as caught:
        detect_layout(other)
    assert str(other) in str(caught.value)
    with pytest.raises(DataError, match="does not exist"):
        detect_layout(tmp_path / "absent.csv")


# ---------------------------------------------------------------- overlap with a run's images


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run's data/manifest.csv and data/splits.csv over six training images (real hashes),
    and an external set of resized, re-encoded, copied and unrelated images."""
    root = tmp_path_factory.mktemp("overlap")
    splits = {"img0": "train", "img1": "train", "img2": "train", "img3": "train",
              "img4": "val", "img5": "test"}  # fmt: skip
    sources = {}
    manifest = []
    for k, image_id in enumerate(splits):
        path = write_rgb(root / "run_images" / f"{image_id}.jpg", blob(k))
        sources[image_id] = path
        found = inspect_image(str(path))
        manifest.append([image_id, str(path), k % 2, found["sha256"], found["phash"]])
    data = root / "results" / "data"
    write_table(data / "manifest.csv", ["image_id", "path", "label", "sha256", "phash"], manifest)
    write_table(data / "splits.csv", ["image_id", "split", "label"],
                [[image_id, split, k % 2] for k, (image_id, split) in enumerate(splits.items())])  # fmt: skip

    external = root / "external"
    external.mkdir()

    def resized(source, name, size, fmt, **save_args):
        image = cv2.resize(read_image(sources[source]), size, interpolation=cv2.INTER_AREA)
        return write_rgb(external / name, image, fmt, **save_args)

    # image id -> (the run image it copies or "", its split or "")
    made = {
        resized("img0", "r224.jpg", (224, 224), "JPEG", quality=70): ("img0", "train"),
        resized("img1", "r100x75.png", (100, 75), "PNG"): ("img1", "train"),
        resized("img2", "r224.png", (224, 224), "PNG"): ("img2", "train"),
        resized("img3", "r100x75.jpg", (100, 75), "JPEG", quality=70): ("img3", "train"),
        resized("img4", "val224.jpg", (224, 224), "JPEG", quality=70): ("img4", "val"),
        resized("img5", "test224.jpg", (224, 224), "JPEG", quality=70): ("img5", "test"),
    }
    copy = external / "copy.jpg"
    shutil.copy(sources["img0"], copy)
    made[copy] = ("img0", "train")
    for seed in (100, 101, 102):
        made[write_rgb(external / f"other{seed}.jpg", blob(seed))] = ("", "")
    paths = sorted(made)
    hashes = [inspect_image(str(p)) for p in paths]
    return SimpleNamespace(
        results=root / "results", data=data, splits=splits,
        ids=[p.name for p in paths], source={p.name: made[p] for p in paths},
        sha256=[h["sha256"] for h in hashes], phash=[h["phash"] for h in hashes],
    )  # fmt: skip


def overlap_by_id(run, reference, **kwargs):
    rows = overlap_rows(run.ids, run.sha256, run.phash, reference, max_distance=2, **kwargs)
    assert [row["image_id"] for row in rows] == run.ids
    return {row["image_id"]: row for row in rows}


def test_resized_and_reencoded_copies_of_training_images_are_flagged(run):
    reference = read_reference(run.data / "splits.csv")
    assert reference.split_names == ["train", "val", "test"]
    assert reference.seen_splits == ("train", "val")
    assert list(reference.image_ids) == list(run.splits)
    rows = overlap_by_id(run, reference)
    for name in ["r224.jpg", "r100x75.png", "r224.png", "r100x75.jpg"]:
        row = rows[name]
        assert row["seen"] is True, row
        assert row["matched_splits"] == "train", row
        assert row["nearest_train"] == run.source[name][0]
        assert row["distance_train"] <= 2
        assert row["identical_to"] == "" and row["identical_split"] == ""
        assert row["distance_val"] > 2 and row["distance_test"] > 2
    assert rows["val224.jpg"]["seen"] is True
    assert rows["val224.jpg"]["matched_splits"] == "val"
    assert rows["val224.jpg"]["nearest_val"] == "img4"


def test_byte_identical_copy_names_its_twin(run):
    rows = overlap_by_id(run, read_reference(run.data / "splits.csv"))
    row = rows["copy.jpg"]
    assert (row["identical_to"], row["identical_split"]) == ("img0", "train")
    assert row["distance_train"] == 0 and row["nearest_train"] == "img0"
    assert row["seen"] is True and row["matched_splits"] == "train"


def test_unrelated_images_and_test_split_copies_are_not_seen(run):
    rows = overlap_by_id(run, read_reference(run.data / "splits.csv"))
    for name in ["other100.jpg", "other101.jpg", "other102.jpg"]:
        row = rows[name]
        assert row["seen"] is False and row["matched_splits"] == "" and row["identical_to"] == ""
        assert min(row["distance_train"], row["distance_val"], row["distance_test"]) > 2
    test_copy = rows["test224.jpg"]
    assert test_copy["matched_splits"] == "test" and test_copy["nearest_test"] == "img5"
    assert test_copy["distance_test"] <= 2
    assert test_copy["seen"] is False


def test_overlap_counts_and_blocking(run):
    reference = read_reference(run.data / "splits.csv")
    rows = overlap_rows(run.ids, run.sha256, run.phash, reference, max_distance=2)
    assert overlap_counts(rows, reference.split_names) == {
        "images": 10, "identical": 1, "match_train": 5, "match_val": 1, "match_test": 1, "seen": 6,
    }  # fmt: skip
    # Blocks of three external images at a time give the same rows as one block.
    assert overlap_rows(run.ids, run.sha256, run.phash, reference, max_distance=2, block=3) == rows
    # A distance of 64 bits matches everything with everything.
    everything = overlap_rows(run.ids, run.sha256, run.phash, reference, max_distance=64)
    assert all(row["matched_splits"] == "train;val;test" and row["seen"] for row in everything)


def test_reference_from_a_results_folder_equals_its_splits_csv(run):
    from_splits = read_reference(run.data / "splits.csv")
    for path in (run.results, run.data):
        other = read_reference(path)
        for field in ("image_ids", "splits", "sha256", "phash"):
            np.testing.assert_array_equal(getattr(other, field), getattr(from_splits, field))
    manifest = list(csv.DictReader(open(run.data / "manifest.csv", newline="")))
    assert list(from_splits.sha256) == [row["sha256"] for row in manifest]
    assert [f"{h:016x}" for h in from_splits.phash.tolist()] == [row["phash"] for row in manifest]


def test_manifest_alone_counts_every_match_as_seen(run, tmp_path):
    manifest = shutil.copy(run.data / "manifest.csv", tmp_path / "manifest.csv")
    reference = read_reference(manifest)
    assert reference.split_names == ["run"] and reference.seen_splits == ("run",)
    rows = overlap_by_id(run, reference)
    assert rows["test224.jpg"]["seen"] is True and rows["test224.jpg"]["matched_splits"] == "run"
    assert rows["copy.jpg"]["identical_split"] == "run"
    assert rows["other100.jpg"]["seen"] is False
    counts = overlap_counts(list(rows.values()), reference.split_names)
    assert counts == {"images": 10, "identical": 1, "match_run": 7, "seen": 7}


def test_splits_are_reported_train_val_test_whatever_the_file_order(run, tmp_path):
    rows = list(csv.reader(open(run.data / "splits.csv", newline="")))
    shutil.copy(run.data / "manifest.csv", tmp_path / "manifest.csv")
    write_table(tmp_path / "splits.csv", rows[0], sorted(rows[1:], key=lambda row: row[1] != "test"))
    reference = read_reference(tmp_path / "splits.csv")
    assert reference.splits[0] == "test" and reference.split_names == ["train", "val", "test"]
    counts = overlap_counts(list(overlap_by_id(run, reference).values()), reference.split_names)
    assert list(counts) == ["images", "identical", "match_train", "match_val", "match_test", "seen"]


def test_reference_errors(run, tmp_path):
    manifest = list(csv.reader(open(run.data / "manifest.csv", newline="")))
    no_phash = write_table(tmp_path / "a" / "manifest.csv", ["image_id", "sha256"],
                           [[row[0], row[3]] for row in manifest[1:]])  # fmt: skip
    with pytest.raises(DataError, match="missing column\\(s\\) phash") as caught:
        read_reference(no_phash)
    assert str(no_phash) in str(caught.value)

    folder = tmp_path / "b"
    folder.mkdir()
    shutil.copy(run.data / "manifest.csv", folder / "manifest.csv")
    splits = write_table(folder / "splits.csv", ["image_id", "split"], [["img0", "train"], ["ghost", "test"]])
    with pytest.raises(DataError, match="image ghost is not in") as caught:
        read_reference(splits)
    assert str(splits) in str(caught.value) and str(folder / "manifest.csv") in str(caught.value)

    bad_hash = write_table(tmp_path / "c" / "manifest.csv", ["image_id", "sha256", "phash"],
                           [["img0", "00", "not-hex"]])  # fmt: skip
    with pytest.raises(DataError, match="not 16 hex digits"):
        read_reference(bad_hash)
    with pytest.raises(DataError, match="manifest does not exist"):
        read_reference(tmp_path / "d" / "splits.csv")
    empty = write_table(tmp_path / "e" / "manifest.csv", ["image_id", "sha256", "phash"], [])
    with pytest.raises(DataError, match="no images in the manifest"):
        read_reference(empty)


def test_splits_beside_a_manifest_without_phash_is_a_data_error(tmp_path):
    write_table(tmp_path / "manifest.csv", ["image_id", "sha256"], [["img0", "ab"]])
    splits = write_table(tmp_path / "splits.csv", ["image_id", "split"], [["img0", "train"]])
    with pytest.raises(DataError, match="phash"):
        read_reference(splits)


@pytest.mark.parametrize("phash", ["1ffffffffffffffff", "-1"])
def test_out_of_range_phash_is_a_data_error(tmp_path, phash):
    manifest = write_table(tmp_path / "manifest.csv", ["image_id", "sha256", "phash"], [["img0", "ab", phash]])
    with pytest.raises(DataError, match="not 16 hex digits"):
        read_reference(manifest)


# ---------------------------------------------------------------- evaluate_external


LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
PROB = np.array([0.1, 0.4, 0.35, 0.2, 0.8, 0.6, 0.3, 0.45, 0.55, 0.9])
THRESHOLDS = {"validation": 0.3, "0.5": 0.5}


def test_unseen_images_leave_out_what_the_overlap_table_marks_seen(tmp_path):
    from skinkd.evaluate.external import unseen_images

    images, overlap = tmp_path / "images.csv", tmp_path / "overlap.csv"
    images.write_text("image_id,path,label\na,x/a.jpg,0\nb,x/b.jpg,1\nc,x/c.jpg,1\n")
    overlap.write_text("image_id,matched_splits,seen\na,train,True\nb,test,False\nc,,False\n")
    paths, labels = unseen_images(images, overlap)
    assert paths == ["x/b.jpg", "x/c.jpg"] and labels.tolist() == [1, 1]
    overlap.write_text("image_id,matched_splits\na,train\n")
    with pytest.raises(DataError, match="overlap.csv: missing column"):
        unseen_images(images, overlap)


def test_evaluate_external_subsets_match_classification_metrics():
    seen = np.array([True, False, False, False, True, False, False, False, False, False])
    result = evaluate_external("m", LABELS, PROB, THRESHOLDS, seen=seen, n_boot=50, seed=0)
    assert list(result) == ["all", "without_overlap"]
    assert {k: result["all"][k] for k in ("n", "benign", "malignant")} == {"n": 10, "benign": 5, "malignant": 5}
    assert {k: result["without_overlap"][k] for k in ("n", "benign", "malignant")} == {
        "n": 8, "benign": 4, "malignant": 4,
    }  # fmt: skip
    for subset, keep in (("all", np.ones(10, bool)), ("without_overlap", ~seen)):
        entry = result[subset]
        assert "note" not in entry and list(entry["thresholds"]) == ["validation", "0.5"]
        for name, threshold in THRESHOLDS.items():
            evaluation = entry["thresholds"][name]
            assert evaluation["threshold"] == threshold
            expected = classification_metrics(LABELS[keep], PROB[keep], threshold)
            assert evaluation["metrics"] == pytest.approx(expected)
            assert set(evaluation["intervals"]) >= {"roc_auc", "sensitivity", "specificity"}
            assert evaluation["bootstrap"]["n_boot"] == 50
    # The subsets really differ: the dropped images change the metrics.
    assert (result["all"]["thresholds"]["0.5"]["metrics"]["tp"]
            != result["without_overlap"]["thresholds"]["0.5"]["metrics"]["tp"])  # fmt: skip


def test_evaluate_external_one_class_subset_gets_a_note():
    seen = LABELS == 1
    result = evaluate_external("m", LABELS, PROB, THRESHOLDS, seen=seen, n_boot=20, seed=0)
    without = result["without_overlap"]
    assert without == {"n": 5, "benign": 5, "malignant": 0, "note": without["note"]}
    assert "one class only" in without["note"]
    assert "thresholds" in result["all"]
    report = format_report({"m": result})
    assert "m (without overlap)" in report and "one class only" in report
    assert "validation (0.300)" in report and "0.5 (0.500)" in report
    no_reference = evaluate_external("m", LABELS, PROB, THRESHOLDS, seen=None, n_boot=20, seed=0)
    assert list(no_reference) == ["all"]


# ---------------------------------------------------------------- skinkd evaluate


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> SimpleNamespace:
    """A seeded (untrained) 32-px student, exported, with its model card (no mapping)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TFLite export needs KERAS_BACKEND=tensorflow")
    return exported_student(tmp_path_factory.mktemp("model"), SIZE)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Eight model-sized images, alternately benign and malignant, listed in labels.csv."""
    root = tmp_path_factory.mktemp("labelled")
    ids = [f"imgs/img{k}.jpg" for k in range(8)]
    for k, image_id in enumerate(ids):
        write_rgb(root / image_id, blob(200 + k, SIZE, SIZE))
    labels = write_table(root / "labels.csv", ["image", "label"],
                         [[image_id, ("benign", "malignant")[k % 2]] for k, image_id in enumerate(ids)])  # fmt: skip
    return SimpleNamespace(root=root, labels=labels, ids=ids, classes=[k % 2 for k in range(8)],
                           paths=[root / image_id for image_id in ids])  # fmt: skip


def evaluate(model_path, labels, *args):
    return main(["evaluate", str(model_path), str(labels), "--workers", "1", "--bootstrap", "50", *args])


def test_cli_evaluate_csv_set(model, labelled, tmp_path, capsys):
    out = tmp_path / "result.json"
    assert evaluate(model.fp16, labelled.labels, "--out", str(out)) == 0
    table = capsys.readouterr().out
    assert "validation (0.300)" in table and "0.5 (0.500)" in table and "roc_auc" in table
    assert "fp16.tflite (all)" in table and "without overlap" not in table
    result = json.loads(out.read_text())
    assert result["images"] == 8 and result["rejected"] == [] and result["overlap"] is None
    entry = result["models"]["fp16.tflite"]
    assert list(entry) == ["all"]
    assert (entry["all"]["n"], entry["all"]["benign"], entry["all"]["malignant"]) == (8, 4, 4)
    thresholds = entry["all"]["thresholds"]
    assert thresholds["validation"]["threshold"] == model.card["threshold"] == 0.3
    assert thresholds["0.5"]["threshold"] == 0.5
    assert thresholds["0.5"]["metrics"]["n"] == 8
    assert [row["image_id"] for row in result["rows"]] == labelled.ids
    assert [row["label"] for row in result["rows"]] == labelled.classes
    predicted = list(predict_paths(Predictor(model.fp16), labelled.paths))
    np.testing.assert_allclose(
        [row["prob_malignant"] for row in result["rows"]],
        [row["prob_malignant"] for row in predicted],
        atol=1e-6,
    )
    probs = np.array([row["prob_malignant"] for row in predicted])
    expected = classification_metrics(np.array(labelled.classes), probs, 0.3)
    assert thresholds["validation"]["metrics"] == pytest.approx(expected)


def test_cli_evaluate_against_a_run(model, labelled, tmp_path, capsys):
    # The run trained on img0 (benign) and img1 (malignant), tested on img2, and holds
    # unrelated images besides.
    rows = []
    for image_id, split, path in [
        ("r0", "train", labelled.paths[0]), ("r1", "train", labelled.paths[1]),
        ("r2", "test", labelled.paths[2]),
        ("u0", "train", write_rgb(tmp_path / "u0.jpg", blob(300))),
        ("u1", "val", write_rgb(tmp_path / "u1.jpg", blob(301))),
    ]:  # fmt: skip
        found = inspect_image(str(path))
        rows.append((image_id, split, found["sha256"], found["phash"]))
    write_table(tmp_path / "data" / "manifest.csv", ["image_id", "sha256", "phash"],
                [[r[0], r[2], r[3]] for r in rows])  # fmt: skip
    splits = write_table(tmp_path / "data" / "splits.csv", ["image_id", "split"], [[r[0], r[1]] for r in rows])
    out = tmp_path / "result.json"
    assert evaluate(model.fp16, labelled.labels, "--against", str(splits), "--out", str(out)) == 0
    assert "fp16.tflite (without overlap)" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["overlap"] == {
        "images": 8, "identical": 3, "match_train": 2, "match_val": 0, "match_test": 1, "seen": 2,
    }  # fmt: skip
    entry = result["models"]["fp16.tflite"]
    assert (entry["all"]["n"], entry["without_overlap"]["n"]) == (8, 6)
    assert (entry["without_overlap"]["benign"], entry["without_overlap"]["malignant"]) == (3, 3)
    assert "thresholds" in entry["without_overlap"]
    by_id = {row["image_id"]: row for row in result["rows"]}
    assert by_id["imgs/img0.jpg"]["identical_to"] == "r0" and by_id["imgs/img0.jpg"]["seen"] is True
    assert by_id["imgs/img2.jpg"]["identical_split"] == "test" and by_id["imgs/img2.jpg"]["seen"] is False
    assert [row["image_id"] for row in result["rows"] if row["seen"]] == ["imgs/img0.jpg", "imgs/img1.jpg"]


def test_cli_bad_rows_stop_or_are_listed(model, labelled, tmp_path, capsys):
    root = Path(shutil.copytree(labelled.root, tmp_path / "set"))
    (root / "imgs" / "truncated.jpg").write_bytes(labelled.paths[0].read_bytes()[:100])
    lines = labelled.labels.read_text().splitlines()
    bad = write_lines(root / "bad_labels.csv", [*lines, "imgs/gone.jpg,benign"])
    assert evaluate(model.fp16, bad) == 2
    err = capsys.readouterr().err
    assert f"{bad}:10: image" in err and "does not exist" in err and "skinkd evaluate: error" in err

    with_truncated = write_lines(root / "truncated.csv",
                                 [*lines, "imgs/gone.jpg,benign", "imgs/truncated.jpg,malignant"])  # fmt: skip
    out = tmp_path / "result.json"
    assert evaluate(model.fp16, with_truncated, "--on-bad-image", "skip", "--out", str(out)) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 8
    rejected = result["rejected"]
    assert [r["image"] for r in rejected] == [f"{with_truncated}:10", "imgs/truncated.jpg"]
    assert "does not exist" in rejected[0]["reason"] and rejected[1]["reason"]
    assert [row["image_id"] for row in result["rows"]] == labelled.ids
    # An unreadable image stops the default run too.
    readable_rows = write_lines(root / "truncated_only.csv", [*lines, "imgs/truncated.jpg,malignant"])
    assert evaluate(model.fp16, readable_rows) == 2
    assert "1 bad image(s)" in capsys.readouterr().err


def test_cli_isic_set_needs_a_mapping(model, tmp_path, capsys):
    root = tmp_path / "isic"
    rows = []
    for k, dx in enumerate(ISIC_COLUMNS):
        write_rgb(root / "Task3_Input" / f"ISIC_{k:07d}.jpg", blob(400 + k, SIZE, SIZE))
        rows.append(isic_row(f"ISIC_{k:07d}", dx))
    labels = write_table(root / "GroundTruth.csv", ["image", *ISIC_COLUMNS], rows)
    assert model.card["training_data"] == {}
    assert evaluate(model.fp16, labels) == 2
    err = capsys.readouterr().err
    assert "--mapping" in err and str(labels) in err
    out = tmp_path / "result.json"
    assert evaluate(model.fp16, labels, "--mapping", "paper", "--out", str(out)) == 0
    result = json.loads(out.read_text())
    assert [row["label"] for row in result["rows"]] == [1, 0, 1, 1, 1, 0, 1]  # MEL NV BCC AKIEC BKL DF VASC


def test_cli_hash_distance_out_of_range(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "m.tflite"), str(tmp_path), "--hash-distance", "65"]) == 2
    assert "--hash-distance: 65 is not in 0..64" in capsys.readouterr().err


# ---------------------------------------------------------------- line numbers and spellings


def test_line_numbers_count_blank_lines(tmp_path):
    write_rgb(tmp_path / "a.jpg", rgb_array(seed=1))
    write_rgb(tmp_path / "b.jpg", rgb_array(seed=2))
    labels = write_lines(tmp_path / "labels.csv",
                         ["image,label", "a.jpg,benign", "", "b.jpg,malignant", "gone.jpg,benign"])  # fmt: skip
    found = read_labelled_set("csv", labels, on_bad_image="skip")
    assert found.rejected[0][0] == f"{labels}:5"


def test_the_same_image_under_another_spelling_is_a_duplicate(tmp_path):
    write_rgb(tmp_path / "a.jpg", rgb_array(seed=1))
    write_rgb(tmp_path / "b.jpg", rgb_array(seed=2))
    labels = write_lines(tmp_path / "labels.csv", ["image,label", "a.jpg,benign", "./a.jpg,benign", "b.jpg,1"])
    found = read_labelled_set("csv", labels, on_bad_image="skip")
    assert [i.image_id for i in found.images] == ["a.jpg", "b.jpg"]


def test_the_isic_2018_test_set_reads_with_its_diagnoses_mapped():
    """The shared ISIC 2018 Task 3 test set, as config/ham10000.yaml names it: 1,512 images,
    307 malignant under the clinical mapping and 559 under the paper's (its README)."""
    root = require_shared("isic2018-test")
    labels = root / "ISIC2018_Task3_Test_GroundTruth.csv"
    for mapping, malignant in (("clinical", 307), ("paper", 559)):
        found = read_labelled_set("isic", labels, mapping=mapping)
        assert len(found.images) == 1512 and found.rejected == []
        assert sum(image.label for image in found.images) == malignant
