"""The ablation grid: cells, preprocessing variants, subsampling and the summary table."""

from __future__ import annotations

import numpy as np
import pytest

from skinkd.data.preprocess import Preprocessing
from skinkd.data.split import subsample_indices
from skinkd.errors import ConfigError
from skinkd.runs.ablation import (
    BASELINE,
    ablation_cells,
    cell_seeds,
    preprocessing_variant,
    summarise,
    summarise_milestones,
    variant_image_size,
)
from skinkd.runs.paper import with_paper_ablation

CHOSEN = {"optimizer": "adafactor", "learning_rate": 0.002, "batch_size": 64, "epochs": 70,
          "temperature": 1, "alpha": 0.5, "feature_conversion": "gmp"}  # fmt: skip
SPEC_FACTORS = {
    "optimizer": ["adam", "adafactor", "nadam", "rmsprop"],
    "batch_size": [16, 32, 64],
    "learning_rate": [0.1, 0.01, 0.001, 0.002],
    "temperature": [1, 2, 5, 10],
    "alpha": [0.3, 0.5],
    "feature_conversion": ["flatten", "gap", "gmp"],
    "epochs": [30, 50, 70, 100],
}


def test_spec_grid_varies_one_factor_at_a_time_around_the_chosen_configuration():
    cells = ablation_cells(CHOSEN, SPEC_FACTORS, ["all", "none"])
    # 24 values in all, 7 of them the chosen ones (one shared baseline), plus one variant.
    assert len(cells) == 24 - 7 + 1 + 1
    assert cells[BASELINE]["student"] == CHOSEN
    for cell_id, cell in cells.items():
        if cell["factor"] in SPEC_FACTORS:
            differing = {k for k in CHOSEN if cell["student"][k] != CHOSEN[k]}
            assert differing == {cell["factor"]}, cell_id
    assert cells["temperature-10"]["student"]["temperature"] == 10
    assert cells["preprocessing-none"]["student"] == CHOSEN


def test_image_size_cells_train_on_the_runs_preprocessing_at_their_own_side():
    cells = ablation_cells(CHOSEN, {"image_size": [64, 96, 128]}, [], image_size=96)
    assert sorted(cells) == [BASELINE, "image_size-128", "image_size-64"]
    cell = cells["image_size-64"]
    assert cell["student"] == CHOSEN and cell["preprocessing"] == "size_64"
    section = {"closing": {"enabled": True}, "resize": {"interpolation": "auto"}}
    assert preprocessing_variant(section, "size_64") == section
    assert variant_image_size("size_64", 96) == 64 and variant_image_size("none", 96) == 96
    with pytest.raises(ValueError, match="size_x"):
        preprocessing_variant(section, "size_x")


def test_epoch_scale_shrinks_every_epoch_count():
    cells = ablation_cells(CHOSEN, {"epochs": [30, 100]}, [], epoch_scale=0.1)
    assert cells[BASELINE]["student"]["epochs"] == 7
    assert cells["epochs-30"]["student"]["epochs"] == 3
    assert cells["epochs-100"]["student"]["epochs"] == 10


@pytest.mark.parametrize(
    ("variant", "enabled"),
    [
        ("all", {"closing", "bilateral", "highlight", "unsharp"}),
        ("none", set()),
        ("no_bilateral", {"closing", "highlight", "unsharp"}),
    ],
)
def test_preprocessing_variants_switch_stages_off(variant, enabled):
    section = preprocessing_variant({"closing": {"kernel_size": 7}}, variant)
    params = Preprocessing.from_config(section, 64)
    on = {s for s in ("closing", "bilateral", "highlight", "unsharp") if getattr(params, s).enabled}
    assert on == enabled
    assert params.closing.kernel_size == 7
    assert params.interpolation == "auto"


def test_linear_resize_variant_keeps_the_stages_and_resizes_linearly():
    section = preprocessing_variant({"resize": {"interpolation": "auto"}}, "linear_resize")
    params = Preprocessing.from_config(section, 64)
    assert params.interpolation == "linear" and params.closing.enabled and params.unsharp.enabled


def test_six_stages_switches_on_what_the_run_switched_off():
    run = {stage: {"enabled": False} for stage in ("closing", "bilateral", "highlight", "unsharp")}
    params = Preprocessing.from_config(preprocessing_variant(run, "six_stages"), 64)
    assert all(getattr(params, s).enabled for s in ("closing", "bilateral", "highlight", "unsharp"))
    assert Preprocessing.from_config(preprocessing_variant(run, "all"), 64).closing.enabled is False


def test_colour_constancy_variant_keeps_the_runs_stages_and_its_p():
    run = {"closing": {"enabled": False}, "color_constancy": {"p": 4}}
    params = Preprocessing.from_config(preprocessing_variant(run, "gray_world"), 64)
    assert params.color_constancy.method == "gray_world" and params.color_constancy.p == 4
    assert not params.closing.enabled and params.bilateral.enabled


def test_photometric_cells_train_with_the_grids_ranges_against_the_runs_own():
    ranges = {"illuminant": 100, "exposure": 1.0, "blur": 0.03}
    factors = {"optimizer": [], "photometric": [True, False]}
    cells = ablation_cells(CHOSEN, factors, ["all"], augment={"flip": True}, photometric=ranges)
    # The run trains without photometric augmentation: false is its baseline.
    assert set(cells) == {BASELINE, "photometric-True"}
    assert cells["photometric-True"]["augment"] == ranges
    assert cells["photometric-True"]["student"] == cells[BASELINE]["student"]
    assert "augment" not in cells[BASELINE]
    on = ablation_cells(CHOSEN, factors, ["all"], augment=ranges, photometric=ranges)
    assert set(on) == {BASELINE, "photometric-False"}
    assert on["photometric-False"]["augment"] == dict.fromkeys(
        ("illuminant", "exposure", "blur", "gamma", "contrast", "vignetting"), 0
    )


def test_one_augment_key_cells_add_it_to_the_runs_ranges_or_the_grids():
    ranges = {"illuminant": 100, "exposure": 1.0, "blur": 0.03}
    combinations = [{"photometric": True, "magnification": 0.5}, {"photometric": True, "blur": 0.01}]
    cells = ablation_cells(CHOSEN, {"magnification": [0.5, 0], "vignetting": [0.45]}, [],
                           augment={"exposure": 0.2}, photometric=ranges,
                           combinations=combinations)  # fmt: skip
    # 0 is the run's own (no magnification): the baseline, no cell of its own.
    assert set(cells) == {BASELINE, "magnification-0.5", "vignetting-0.45",
                          "magnification-0.5+photometric-True", "blur-0.01+photometric-True"}  # fmt: skip
    assert cells["magnification-0.5"]["augment"] == {"magnification": 0.5}
    assert cells["vignetting-0.45"]["augment"] == {"vignetting": 0.45}
    assert cells["magnification-0.5"]["student"] == cells[BASELINE]["student"]
    # In a combination the key joins the photometric factor's ranges and wins over them,
    # whichever comes first in the id's alphabetical order.
    both = cells["magnification-0.5+photometric-True"]["augment"]
    assert both == {**ranges, "magnification": 0.5}
    assert cells["blur-0.01+photometric-True"]["augment"] == {**ranges, "blur": 0.01}


def test_combinations_are_cells_with_several_factors_at_once():
    ranges = {"illuminant": 100, "exposure": 1.0, "blur": 0.03}
    combinations = [
        {"alpha": 1.0, "epochs": 100},
        {"preprocessing": "shades_of_gray", "photometric": True},
        {"alpha": 0.5, "epochs": 70},  # the chosen configuration: no cell of its own
    ]
    cells = ablation_cells(CHOSEN, {"alpha": [1.0]}, [], epoch_scale=0.5, augment={},
                           photometric=ranges, combinations=combinations)  # fmt: skip
    # Ids name the factors in alphabetical order, however the combination lists them.
    assert set(cells) == {BASELINE, "alpha-1.0", "alpha-1.0+epochs-100",
                          "photometric-True+preprocessing-shades_of_gray"}  # fmt: skip
    long = cells["alpha-1.0+epochs-100"]
    assert (long["factor"], long["value"]) == ("alpha+epochs", "1.0+100")
    assert long["student"] == {**CHOSEN, "alpha": 1.0, "epochs": 50} and long["preprocessing"] == "all"
    both = cells["photometric-True+preprocessing-shades_of_gray"]
    assert both["preprocessing"] == "shades_of_gray" and both["augment"] == ranges
    assert both["student"] == cells[BASELINE]["student"]
    with pytest.raises(ValueError, match="image_size and preprocessing"):
        ablation_cells(CHOSEN, {}, [], image_size=96, combinations=[{"image_size": 64, "preprocessing": "none"}])


def test_cell_seeds_give_named_cells_their_own_seeds():
    cells = ablation_cells(CHOSEN, {"epochs": [100], "alpha": [1.0]}, [])
    seeds = cell_seeds(cells, [1, 2, 3], {"epochs-100": [1]})
    assert seeds == {BASELINE: [1, 2, 3], "epochs-100": [1], "alpha-1.0": [1, 2, 3]}
    with pytest.raises(ConfigError, match=r"ablation.cell_seeds.epochs-70: no such cell; .*epochs-100"):
        cell_seeds(cells, [1], {"epochs-70": [1]})


def test_subsample_is_stratified_seeded_and_bounded():
    labels = np.array([0] * 700 + [1] * 300)
    keep = subsample_indices(labels, 100, seed=3)
    assert len(keep) == 100 and labels[keep].sum() == 30
    np.testing.assert_array_equal(keep, subsample_indices(labels, 100, seed=3))
    assert not np.array_equal(keep, subsample_indices(labels, 100, seed=4))
    assert len(subsample_indices(labels, None, seed=0)) == 1000


def test_summary_gives_mean_and_spread_over_seeds_beside_the_paper():
    def result(cell, factor, value, seed, auc):
        test = {"roc_auc": auc, "accuracy": auc - 0.1, "mcc": 0.5, "balanced_accuracy": 0.7}
        return {"cell": cell, "factor": factor, "value": value, "seed": seed, "test": test,
                "train_seconds": 10.0}  # fmt: skip

    results = [
        result(BASELINE, BASELINE, "", 0, 0.80),
        result(BASELINE, BASELINE, "", 1, 0.90),
        result("optimizer-adam", "optimizer", "adam", 0, 0.70),
    ]
    table = with_paper_ablation(summarise(results)).set_index("cell")
    assert table.loc[BASELINE, "seeds"] == 2
    assert table.loc[BASELINE, "roc_auc_mean"] == pytest.approx(0.85)
    assert table.loc[BASELINE, "roc_auc_std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert np.isnan(table.loc["optimizer-adam", "roc_auc_std"])
    assert table.loc["optimizer-adam", "paper_ham10000_accuracy"] == 0.7414
    assert table.loc[BASELINE, "paper_kaggle_mcc"] == 0.9787


def test_summary_carries_validation_shift_and_external_columns_where_the_cells_have_them():
    def result(seed, val, clean, shifted):
        test = {"roc_auc": 0.8, "accuracy": 0.7, "mcc": 0.5, "balanced_accuracy": 0.7}
        shifts = {"clean_roc_auc": clean, "mean_shifted_roc_auc": shifted, "drop": clean - shifted}
        return {"cell": BASELINE, "factor": BASELINE, "value": "", "seed": seed, "test": test,
                "val": {"roc_auc": val}, "val_shifts": shifts, "train_seconds": 1.0}  # fmt: skip

    first, second = result(0, 0.9, 0.9, 0.8), result(1, 0.86, 0.86, 0.82)
    first["external"] = {"ph2": {"images": 200, "roc_auc": 0.7}}
    second["external"] = {"ph2": {"images": 200, "roc_auc": 0.6}}
    row = summarise([first, second]).iloc[0]
    assert row["ph2_roc_auc_mean"] == pytest.approx(0.65)
    assert row["val_roc_auc_mean"] == pytest.approx(0.88)
    assert row["val_shifted_roc_auc_mean"] == pytest.approx(0.81)
    assert row["val_shift_drop_mean"] == pytest.approx(0.07)
    assert row["val_shift_drop_std"] == pytest.approx(np.std([0.1, 0.04], ddof=1))


def test_milestones_give_auc_against_epochs_per_cell_over_seeds():
    def result(cell, seed, scores):
        return {"cell": cell, "factor": cell, "value": "", "seed": seed,
                "milestones": [{"epochs": e, "val_roc_auc": v, "test_roc_auc": t}
                               for e, v, t in scores]}  # fmt: skip

    table = summarise_milestones([
        result(BASELINE, 1, [(10, 0.80, 0.82), (30, 0.85, 0.86)]),
        result(BASELINE, 2, [(10, 0.84, 0.80), (30, 0.87, 0.88)]),
        result("alpha-1.0", 1, [(10, 0.70, 0.71), (30, 0.75, 0.74)]),
    ])  # fmt: skip
    rows = table.set_index(["cell", "epochs"])
    assert list(rows.index) == [("alpha-1.0", 10), ("alpha-1.0", 30), (BASELINE, 10), (BASELINE, 30)]
    assert rows.loc[(BASELINE, 30), "seeds"] == 2
    assert rows.loc[(BASELINE, 10), "test_roc_auc_mean"] == pytest.approx(0.81)
    assert rows.loc[(BASELINE, 10), "val_roc_auc_std"] == pytest.approx(np.std([0.8, 0.84], ddof=1))
    assert np.isnan(rows.loc[("alpha-1.0", 30), "test_roc_auc_std"])
