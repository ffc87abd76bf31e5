"""Split properties: stratified, grouped, seeded and byte-identical; and the leakage table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import require_shared
from skinkd.atomic import write_csv
from skinkd.data.split import assign_splits, leakage_table, make_splits


def grouped_manifest(n_groups: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Lesions of 1-4 images, about 30% malignant, with random 64-bit hashes."""
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 1, 1, 2, 3, 4], n_groups)
    labels = (rng.random(n_groups) < 0.3).astype(int)
    rows = []
    for g, (size, label) in enumerate(zip(sizes, labels, strict=True)):
        for k in range(size):
            rows.append((f"IMG_{g:05d}_{k}", f"LES_{g:05d}", label))
    frame = pd.DataFrame(rows, columns=["image_id", "group", "label"])
    frame["phash"] = [f"{h:016x}" for h in rng.integers(0, 2**63, len(frame))]
    frame["sha256"] = [f"sha{i}" for i in range(len(frame))]
    return frame


def shares(splits: pd.DataFrame) -> pd.Series:
    return splits.groupby("split")["label"].mean()


@pytest.mark.parametrize("group_by", ["lesion", "image"])
def test_split_is_stratified_within_one_point(group_by):
    manifest = grouped_manifest()
    splits = make_splits(manifest, group_by, [0.7, 0.1, 0.2], seed=7)
    overall = manifest["label"].mean()
    for split, share in shares(splits).items():
        assert abs(share - overall) < 0.01, f"{split}: {share:.3f} vs {overall:.3f}"
    sizes = splits["split"].value_counts(normalize=True)
    assert sizes["train"] == pytest.approx(0.7, abs=0.01)
    assert sizes["val"] == pytest.approx(0.1, abs=0.01)
    assert sizes["test"] == pytest.approx(0.2, abs=0.01)


def test_lesion_split_puts_no_lesion_in_two_splits():
    splits = make_splits(grouped_manifest(), "lesion", [0.7, 0.1, 0.2], seed=7)
    assert splits.groupby("group")["split"].nunique().max() == 1


def test_image_split_lets_lesions_cross_splits():
    splits = make_splits(grouped_manifest(), "image", [0.7, 0.1, 0.2], seed=7)
    assert (splits.groupby("group")["split"].nunique() > 1).sum() > 50


def test_split_file_is_byte_identical_on_rerun_and_changes_with_seed(tmp_path):
    manifest = grouped_manifest()
    for name, seed in (("a.csv", 3), ("b.csv", 3), ("c.csv", 4)):
        write_csv(make_splits(manifest, "lesion", [0.7, 0.1, 0.2], seed), tmp_path / name)
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.csv", "b.csv", "c.csv"))
    assert a == b
    assert a != c


def test_split_does_not_depend_on_row_order():
    manifest = grouped_manifest()
    shuffled = manifest.sample(frac=1.0, random_state=1)
    a = make_splits(manifest, "lesion", [0.7, 0.1, 0.2], 5).set_index("image_id")["split"]
    b = make_splits(shuffled, "lesion", [0.7, 0.1, 0.2], 5).set_index("image_id")["split"]
    pd.testing.assert_series_equal(a.sort_index(), b.sort_index())


def test_group_with_a_malignant_image_is_stratified_as_malignant():
    split = assign_splits([0, 1, 0, 0], ["a", "a", "b", "c"], [0.5, 0.25, 0.25], seed=0)
    assert split[0] == split[1]


def test_kept_division_fixes_the_test_split():
    manifest = grouped_manifest(400)
    manifest["division"] = np.where(np.arange(len(manifest)) % 5 == 0, "test", "train")
    splits = make_splits(manifest, "lesion", [0.7, 0.1, 0.2], 1, keep_division=True)
    is_test = manifest["division"] == "test"
    assert (splits.loc[is_test, "split"] == "test").all()
    rest = splits.loc[~is_test, "split"].value_counts(normalize=True)
    assert set(rest.index) == {"train", "val"}
    assert rest["val"] == pytest.approx(0.1 / 0.8, abs=0.02)


def test_leakage_table_counts_crossings_independently():
    manifest = grouped_manifest(600)
    # Make images 0 and 1 (one lesion) and 2 and the last image (other lesions) identical.
    last = len(manifest) - 1
    manifest.loc[1, ["phash", "sha256"]] = manifest.loc[0, ["phash", "sha256"]].to_numpy()
    manifest.loc[last, ["phash", "sha256"]] = manifest.loc[2, ["phash", "sha256"]].to_numpy()
    table = leakage_table(manifest, [0.7, 0.1, 0.2], seed=9, hash_distance=0).set_index("group_by")
    for group_by in ("lesion", "image"):
        split = make_splits(manifest, group_by, [0.7, 0.1, 0.2], 9)["split"].to_numpy()
        per_group = pd.Series(split).groupby(manifest["group"]).nunique()
        row = table.loc[group_by]
        assert row["lesions_crossing_splits"] == (per_group > 1).sum()
        assert row["near_duplicate_pairs"] >= 2
        expected_exact = int(split[0] != split[1]) + int(split[2] != split[last])
        assert row["exact_duplicate_pairs_crossing"] == expected_exact
    assert table.loc["lesion", "lesions_crossing_splits"] == 0


def test_ham10000_lesion_split_is_stratified_and_leak_free():
    from skinkd.data.datasets import load_ham10000

    root = require_shared("ham10000")
    source = load_ham10000(root, "HAM10000_metadata.csv", "clinical")
    splits = make_splits(source, "lesion", [0.7, 0.1, 0.2], seed=42)
    assert splits.groupby("group")["split"].nunique().max() == 1
    overall = source["label"].mean()
    for share in shares(splits):
        assert abs(share - overall) < 0.01
    leaky = make_splits(source, "image", [0.7, 0.1, 0.2], seed=42)
    assert (leaky.groupby("group")["split"].nunique() > 1).sum() > 500
