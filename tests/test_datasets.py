"""skinkd.data.datasets loaders on small generated trees, and on the real data when present."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from conftest import require_shared
from helpers import (
    HAM_COLUMNS,
    ham_rows,
    make_ham_tree,
    rgb_array,
    write_ham_metadata,
    write_rgb,
)
from skinkd.data.datasets import load_folder, load_ham10000, load_source, load_synthetic
from skinkd.data.manifest import build_manifest
from skinkd.errors import DataError

# Independent of skinkd.data.datasets.HAM_MALIGNANT on purpose.
PAPER_MALIGNANT = {"mel", "bcc", "akiec", "bkl", "vasc"}
CLINICAL_MALIGNANT = {"mel", "bcc", "akiec"}
LEADING = ["image_id", "path", "label", "label_name", "group"]

# --------------------------------------------------------------------------- HAM10000


@pytest.mark.parametrize("layout", ["parts", "images"])
@pytest.mark.parametrize("line_end", ["\r\n", "\n"])
def test_ham10000_loads_both_layouts_and_line_ends(tmp_path, layout, line_end):
    rows = ham_rows()
    root, meta, paths = make_ham_tree(tmp_path / "ham", rows, layout=layout, line_end=line_end)
    assert meta.read_bytes().count(b"\r\n") == (len(rows) + 1 if line_end == "\r\n" else 0)
    if layout == "parts":  # images really are split between the two folders
        assert len(list((root / "HAM10000_images_part_1").iterdir())) == 5
        assert len(list((root / "HAM10000_images_part_2").iterdir())) == 5

    table = load_ham10000(root, "HAM10000_metadata.csv", "paper")

    assert len(table) == len(rows)
    assert list(table.columns[:5]) == LEADING
    for column in ("lesion_id", "dx", "dx_type", "age", "sex", "localization"):
        assert column in table.columns
    by_id = table.set_index("image_id")
    for row in rows:
        got = by_id.loc[row["image_id"]]
        assert Path(got["path"]) == paths[row["image_id"]]
        assert Path(got["path"]).is_file()
        for column in HAM_COLUMNS[2:] + ["lesion_id"]:
            assert got[column] == row[column], column  # no stray "\r" from CRLF
        assert got["group"] == row["lesion_id"]
    assert list(table["image_id"]) == sorted(r["image_id"] for r in rows)


@pytest.mark.parametrize(
    "mapping, malignant", [("paper", PAPER_MALIGNANT), ("clinical", CLINICAL_MALIGNANT)]
)
def test_ham10000_mapping_sets_binary_labels(tmp_path, mapping, malignant):
    rows = ham_rows()
    root, _, _ = make_ham_tree(tmp_path / "ham", rows)
    table = load_ham10000(root, "HAM10000_metadata.csv", mapping).set_index("image_id")
    for row in rows:
        expected = 1 if row["dx"] in malignant else 0
        assert table.loc[row["image_id"], "label"] == expected, row["dx"]
        assert table.loc[row["image_id"], "label_name"] == ("benign", "malignant")[expected]
    assert table["label"].dtype == "int64"
    # the two mappings differ exactly on bkl and vasc
    assert table["label"].sum() == sum(r["dx"] in malignant for r in rows)


def test_ham10000_group_equals_lesion_id(tmp_path):
    root, _, _ = make_ham_tree(tmp_path / "ham")
    table = load_ham10000(root, "HAM10000_metadata.csv", "paper")
    assert (table["group"] == table["lesion_id"]).all()
    assert table.loc[table["image_id"] == "ISIC_0000002", "group"].item() == "HAM_0000001"
    assert table["group"].nunique() == 8


def test_ham10000_metadata_given_as_absolute_path_outside_root(tmp_path):
    root, meta, _ = make_ham_tree(tmp_path / "ham", layout="images")
    elsewhere = tmp_path / "meta" / "m.csv"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(meta.read_bytes())
    meta.unlink()
    assert len(load_ham10000(root, elsewhere, "clinical")) == 10


def test_ham10000_optional_columns_absent_are_empty(tmp_path):
    root = tmp_path / "ham"
    rows = ham_rows()
    write_ham_metadata(root / "meta.csv", rows, columns=["lesion_id", "image_id", "dx"])
    for row in rows:
        write_rgb(root / "images" / f"{row['image_id']}.jpg", rgb_array(8, 8))
    table = load_ham10000(root, "meta.csv", "paper")
    for column in ("dx_type", "age", "sex", "localization"):
        assert (table[column] == "").all()


@pytest.mark.parametrize("column", ["dx", "lesion_id", "image_id"])
def test_ham10000_missing_metadata_column_names_file_and_column(tmp_path, column):
    root = tmp_path / "ham"
    (root / "images").mkdir(parents=True)
    columns = [c for c in HAM_COLUMNS if c != column]
    meta = write_ham_metadata(root / "HAM10000_metadata.csv", ham_rows(), columns=columns)
    with pytest.raises(DataError) as info:
        load_ham10000(root, "HAM10000_metadata.csv", "paper")
    message = str(info.value)
    assert str(meta) in message
    assert f"missing column(s) {column}" in message


def test_ham10000_unknown_dx_names_the_value(tmp_path):
    rows = ham_rows()
    rows[3]["dx"] = "melanoma"
    root, meta, _ = make_ham_tree(tmp_path / "ham", rows)
    with pytest.raises(DataError) as info:
        load_ham10000(root, "HAM10000_metadata.csv", "paper")
    message = str(info.value)
    assert str(meta) in message
    assert "'melanoma'" in message
    assert "line 5" in message  # header is line 1, rows[3] is line 5


def test_ham10000_duplicate_image_id_names_it(tmp_path):
    rows = ham_rows()
    rows[7]["image_id"] = rows[2]["image_id"]
    root, meta, _ = make_ham_tree(tmp_path / "ham", rows, layout="images")
    with pytest.raises(DataError) as info:
        load_ham10000(root, "HAM10000_metadata.csv", "paper")
    message = str(info.value)
    assert str(meta) in message
    assert "duplicate image_id" in message and rows[2]["image_id"] in message


def test_ham10000_metadata_file_absent(tmp_path):
    root = tmp_path / "ham"
    (root / "images").mkdir(parents=True)
    with pytest.raises(DataError) as info:
        load_ham10000(root, "HAM10000_metadata.csv", "paper")
    assert str(root / "HAM10000_metadata.csv") in str(info.value)
    assert "does not exist" in str(info.value)


def test_ham10000_root_that_does_not_exist(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        load_ham10000(root, "HAM10000_metadata.csv", "paper")
    assert str(root) in str(info.value) and "does not exist" in str(info.value)
    assert "dataset.root" in str(info.value)


def test_ham10000_header_only_metadata_is_an_error(tmp_path):
    root = tmp_path / "ham"
    (root / "images").mkdir(parents=True)
    meta = write_ham_metadata(root / "HAM10000_metadata.csv", [])
    with pytest.raises(DataError, match="no rows") as info:
        load_ham10000(root, "HAM10000_metadata.csv", "paper")
    assert str(meta) in str(info.value)


def test_ham10000_image_missing_on_disk_is_reported_by_build_manifest(tmp_path):
    rows = ham_rows()
    missing_id = "ISIC_0000004"
    root, _, _ = make_ham_tree(tmp_path / "ham", rows, skip_images=(missing_id,))
    table = load_ham10000(root, "HAM10000_metadata.csv", "paper")  # loading does not fail
    missing_row = table.loc[table["image_id"] == missing_id].iloc[0]
    # the row keeps the file's expected name so the error can say which image is missing
    assert Path(missing_row["path"]).name == f"{missing_id}.jpg"
    assert not Path(missing_row["path"]).exists()

    with pytest.raises(DataError) as info:
        build_manifest(table, on_bad_image="error")
    assert missing_row["path"] in str(info.value)
    assert "does not exist" in str(info.value)

    manifest, rejected = build_manifest(table, on_bad_image="skip")
    assert len(manifest) == len(rows) - 1
    assert missing_id not in set(manifest["image_id"])
    assert list(rejected["image_id"]) == [missing_id]
    assert rejected["path"][0] == missing_row["path"]
    assert missing_row["path"] in rejected["reason"][0]


def test_ham10000_through_load_source(tmp_path):
    root, _, _ = make_ham_tree(tmp_path / "ham")
    table = load_source(
        {"kind": "ham10000", "root": str(root), "metadata": "HAM10000_metadata.csv",
         "mapping": "clinical"}
    )
    assert table["label"].sum() == sum(r["dx"] in CLINICAL_MALIGNANT for r in ham_rows())


# --------------------------------------------------------------------------- folder layouts


def _fill(folder: Path, n: int, suffix: str = ".jpg", start: int = 0) -> list[Path]:
    return [write_rgb(folder / f"{start + k}{suffix}", rgb_array(8, 10, seed=k)) for k in range(n)]


def test_folder_kaggle_layout_train_and_test(tmp_path):
    root = tmp_path / "kaggle"
    _fill(root / "train" / "benign", 3)
    _fill(root / "train" / "malignant", 2)
    _fill(root / "test" / "benign", 1)
    _fill(root / "test" / "malignant", 2)
    table = load_folder(root, ["benign"], ["malignant"])
    assert list(table.columns[:5]) == LEADING
    assert len(table) == 8
    counts = Counter(zip(table["division"], table["class_folder"], table["label"]))
    assert counts == {
        ("train", "benign", 0): 3,
        ("train", "malignant", 1): 2,
        ("test", "benign", 0): 1,
        ("test", "malignant", 1): 2,
    }
    row = table.loc[table["image_id"] == "test/malignant/1.jpg"].iloc[0]
    assert Path(row["path"]) == root / "test" / "malignant" / "1.jpg"
    assert row["label_name"] == "malignant"
    assert (table["group"] == table["image_id"]).all()
    assert table["image_id"].is_unique


def test_folder_flat_class_layout_has_empty_division(tmp_path):
    root = tmp_path / "flat"
    _fill(root / "benign", 2)
    _fill(root / "malignant", 3, suffix=".png")
    table = load_folder(root, ["benign"], ["malignant"])
    assert len(table) == 5
    assert (table["division"] == "").all()
    assert sorted(table["image_id"]) == [
        "benign/0.jpg", "benign/1.jpg", "malignant/0.png", "malignant/1.png", "malignant/2.png"
    ]
    assert table.groupby("label").size().to_dict() == {0: 2, 1: 3}


@pytest.mark.parametrize("test_dir", ["absent", "empty", "empty_class_folders"])
def test_folder_without_test_images_loads_train_only(tmp_path, test_dir):
    root = tmp_path / "kaggle"
    _fill(root / "train" / "benign", 2)
    _fill(root / "train" / "malignant", 2)
    if test_dir == "empty":
        (root / "test").mkdir()
    elif test_dir == "empty_class_folders":
        (root / "test" / "benign").mkdir(parents=True)
        (root / "test" / "malignant").mkdir(parents=True)
    table = load_folder(root, ["benign"], ["malignant"])
    assert len(table) == 4
    assert (table["division"] == "train").all()


def test_folder_unknown_class_folder_names_folder_and_config_keys(tmp_path):
    root = tmp_path / "flat"
    _fill(root / "benign", 1)
    _fill(root / "malignant", 1)
    _fill(root / "unsure", 1)
    with pytest.raises(DataError) as info:
        load_folder(root, ["benign"], ["malignant"])
    message = str(info.value)
    assert str(root / "unsure") in message and "'unsure'" in message
    assert "dataset.benign_classes" in message and "dataset.malignant_classes" in message


def test_folder_unknown_class_folder_inside_division_is_an_error(tmp_path):
    root = tmp_path / "kaggle"
    _fill(root / "train" / "benign", 1)
    _fill(root / "train" / "malignant", 1)
    _fill(root / "test" / "other", 1)
    with pytest.raises(DataError, match="unknown class folder 'other'") as info:
        load_folder(root, ["benign"], ["malignant"])
    assert str(root / "test" / "other") in str(info.value)


def test_folder_empty_flat_class_folder_is_named(tmp_path):
    root = tmp_path / "flat"
    (root / "benign").mkdir(parents=True)
    (root / "benign" / "readme.txt").write_text("no images here")
    _fill(root / "malignant", 2)
    with pytest.raises(DataError) as info:
        load_folder(root, ["benign"], ["malignant"])
    assert str(root / "benign") in str(info.value)
    assert "empty class folder" in str(info.value)


def test_folder_empty_class_in_a_nonempty_division_is_named(tmp_path):
    root = tmp_path / "kaggle"
    _fill(root / "train" / "benign", 2)
    _fill(root / "train" / "malignant", 2)
    _fill(root / "test" / "benign", 2)
    (root / "test" / "malignant").mkdir(parents=True)
    with pytest.raises(DataError, match="empty class folder") as info:
        load_folder(root, ["benign"], ["malignant"])
    assert str(root / "test" / "malignant") in str(info.value)


def test_folder_with_only_one_class_is_an_error(tmp_path):
    root = tmp_path / "flat"
    _fill(root / "benign", 2)
    with pytest.raises(DataError, match="no malignant images"):
        load_folder(root, ["benign"], ["malignant"])


def test_folder_root_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match="does not exist") as info:
        load_folder(tmp_path / "nowhere", ["benign"], ["malignant"])
    assert str(tmp_path / "nowhere") in str(info.value)


def test_folder_custom_class_names(tmp_path):
    root = tmp_path / "custom"
    _fill(root / "nevus", 2)
    _fill(root / "keratosis", 1)
    _fill(root / "melanoma", 3)
    _fill(root / "carcinoma", 1)
    table = load_folder(root, ["nevus", "keratosis"], ["melanoma", "carcinoma"])
    labels = table.groupby("class_folder")["label"].agg(["first", "size"]).to_dict("index")
    assert labels == {
        "nevus": {"first": 0, "size": 2},
        "keratosis": {"first": 0, "size": 1},
        "melanoma": {"first": 1, "size": 3},
        "carcinoma": {"first": 1, "size": 1},
    }
    # with the default names the folders are unknown (the first in sorted order is named)
    with pytest.raises(DataError, match="unknown class folder 'carcinoma'"):
        load_folder(root, ["benign"], ["malignant"])


def test_folder_finds_images_in_nested_subfolders_and_ignores_other_files(tmp_path):
    root = tmp_path / "flat"
    expected = {
        "benign/a.jpg": root / "benign" / "a.jpg",
        "benign/2019/b.JPG": root / "benign" / "2019" / "b.JPG",
        "benign/2019/deep/c.jpeg": root / "benign" / "2019" / "deep" / "c.jpeg",
        "malignant/d.png": root / "malignant" / "d.png",
        "malignant/x/e.bmp": root / "malignant" / "x" / "e.bmp",
    }
    for path in expected.values():
        write_rgb(path, rgb_array(6, 6))  # format from the suffix, any case
    (root / "benign" / "notes.txt").write_text("ignore me")
    (root / "benign" / "2019" / "meta.csv").write_text("a,b\n")
    (root / "malignant" / "Thumbs.db").write_bytes(b"\x00\x01")
    write_rgb(root / "malignant" / ".hidden.jpg", rgb_array(6, 6))  # dot-file: ignored
    (root / "malignant" / "archive.jpg.bak").write_bytes(b"xx")
    table = load_folder(root, ["benign"], ["malignant"])
    got = dict(zip(table["image_id"], map(Path, table["path"])))
    assert got == expected


def test_folder_images_differing_only_in_suffix_get_distinct_ids(tmp_path):
    root = tmp_path / "flat"
    write_rgb(root / "benign" / "1.jpg", rgb_array(6, 6))
    write_rgb(root / "benign" / "1.png", rgb_array(6, 6))
    write_rgb(root / "malignant" / "2.jpg", rgb_array(6, 6))
    table = load_folder(root, ["benign"], ["malignant"])
    assert table["image_id"].is_unique and len(table) == 3


def test_folder_rows_go_through_build_manifest(tmp_path):
    root = tmp_path / "kaggle"
    _fill(root / "train" / "benign", 2)
    _fill(root / "train" / "malignant", 2)
    (root / "train" / "malignant" / "9.jpg").write_bytes(b"")  # a bad one
    table = load_folder(root, ["benign"], ["malignant"])
    assert len(table) == 5
    manifest, rejected = build_manifest(table, on_bad_image="skip")
    assert len(manifest) == 4 and (manifest["width"] == 10).all()
    assert list(rejected["image_id"]) == ["train/malignant/9.jpg"]


def test_folder_through_load_source_and_unknown_kind(tmp_path):
    root = tmp_path / "flat"
    _fill(root / "b", 1)
    _fill(root / "m", 1)
    table = load_source(
        {"kind": "folder", "root": str(root), "benign_classes": ["b"], "malignant_classes": ["m"]}
    )
    assert dict(zip(table["class_folder"], table["label"])) == {"b": 0, "m": 1}
    with pytest.raises(DataError, match="dataset.kind: unknown kind 'isic'"):
        load_source({"kind": "isic", "root": str(root)})


def test_synthetic_loader_reads_metadata(tmp_path):
    root = tmp_path / "syn"
    root.mkdir()
    pd.DataFrame(
        {"image_id": ["s2", "s1", "s3"], "label": ["malignant", "benign", "benign"],
         "lesion_id": ["L1", "L1", "L2"]}
    ).to_csv(root / "metadata.csv", index=False)
    table = load_synthetic(root)
    assert list(table["image_id"]) == ["s1", "s2", "s3"]
    assert list(table["label"]) == [0, 1, 0]
    assert list(table["group"]) == ["L1", "L1", "L2"]
    assert Path(table["path"][0]) == root / "images" / "s1.jpg"
    with pytest.raises(DataError, match="metadata file does not exist"):
        load_synthetic(tmp_path / "none")


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_ham10000_counts():
    root = require_shared("ham10000")
    paper = load_ham10000(root, "HAM10000_metadata.csv", "paper")
    clinical = load_ham10000(root, "HAM10000_metadata.csv", "clinical")
    assert len(paper) == 10_015
    assert paper["lesion_id"].nunique() == 7_470
    assert paper["group"].nunique() == 7_470
    assert paper["image_id"].is_unique
    assert int(paper["label"].sum()) == 3_195
    assert int(clinical["label"].sum()) == 1_954
    assert paper["dx"].value_counts().to_dict() == {
        "nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142, "df": 115,
    }
    # labels follow the independent mappings, row by row
    assert (paper["label"] == paper["dx"].isin(PAPER_MALIGNANT).astype(int)).all()
    assert (clinical["label"] == clinical["dx"].isin(CLINICAL_MALIGNANT).astype(int)).all()
    # every listed image was found in images/ (no invented paths) and no CR leaked
    assert all(Path(p).parent == root / "images" for p in paper["path"])
    assert not paper["localization"].str.contains("\r").any()


@pytest.mark.realdata
def test_real_ham10000_sample_through_build_manifest():
    root = require_shared("ham10000")
    table = load_ham10000(root, "HAM10000_metadata.csv", "paper")
    sample = pd.concat(
        [table[table["label"] == 0].sample(25, random_state=0),
         table[table["label"] == 1].sample(25, random_state=0)]
    )
    manifest, rejected = build_manifest(sample, on_bad_image="error")
    assert len(manifest) == 50 and len(rejected) == 0
    assert set(zip(manifest["width"], manifest["height"])) == {(200, 150)}


@pytest.mark.realdata
def test_real_kaggle_sample():
    root = require_shared("kaggle-sample")
    table = load_folder(root, ["benign"], ["malignant"])
    assert len(table) == 400
    assert table.groupby("label_name").size().to_dict() == {"benign": 200, "malignant": 200}
    assert (table["division"] == "train").all()
    sample = pd.concat(
        [table[table["label"] == 0].head(10), table[table["label"] == 1].head(10)]
    )
    manifest, _ = build_manifest(sample)
    assert set(zip(manifest["width"], manifest["height"])) == {(224, 224)}


def test_metadata_image_id_that_escapes_the_root_is_refused(tmp_path):
    rows = ham_rows()
    rows[3]["image_id"] = "../../outside"
    root, _, _ = make_ham_tree(tmp_path / "ham", rows, layout="images", skip_images=("../../outside",))
    with pytest.raises(DataError, match=r"outside.jpg: an image of .*HAM10000_metadata.csv leaves the data root"):
        load_ham10000(root, "HAM10000_metadata.csv", "paper")


def test_symlinked_image_pointing_outside_the_root_is_refused(tmp_path):
    root, _, paths = make_ham_tree(tmp_path / "ham", layout="images")
    secret = tmp_path / "elsewhere" / "secret.jpg"
    secret.parent.mkdir()
    paths["ISIC_0000004"].rename(secret)
    paths["ISIC_0000004"].symlink_to(secret)
    with pytest.raises(DataError, match=r"ISIC_0000004.jpg: .* leaves the data root .* resolves to .*secret.jpg"):
        load_ham10000(root, "HAM10000_metadata.csv", "paper")
    folder = tmp_path / "folder"
    for cls in ("benign", "malignant"):
        write_rgb(folder / cls / "a.jpg", rgb_array(seed=1))
    (folder / "malignant" / "link.jpg").symlink_to(secret)
    with pytest.raises(DataError, match=r"link.jpg: image leaves the data root"):
        load_folder(folder, ["benign"], ["malignant"])
