import os
import sys

from snakemake.utils import validate

# Rule scripts import the skinkd package from this checkout, in any (conda) environment.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH", "")) if p
    )
)
sys.path.insert(0, workflow.basedir)

from skinkd.config import check_config, check_schema
from skinkd.preprocess import Preprocessing

CONFIG_SCHEMA = "../schemas/config.schema.yaml"
# Readable messages first (key path and what is allowed), then Snakemake fills the defaults.
check_schema(config, os.path.join(workflow.current_basedir, CONFIG_SCHEMA))
validate(config, schema=CONFIG_SCHEMA)
check_config(config)

RESULTS = f"results/{config['name']}"
DATASET = config["dataset"]
SHARDS = list(range(config["preprocess"]["shards"]))
ENV_PREPROCESS = "../../envs/preprocess.yaml"


def dataset_root():
    """The folder the manifest reads: the generated set for synthetic data."""
    if DATASET["kind"] == "synthetic":
        return f"{RESULTS}/synthetic"
    return DATASET["root"]


def manifest_inputs(wildcards):
    if DATASET["kind"] == "synthetic":
        return {"root": f"{RESULTS}/synthetic"}
    if DATASET["kind"] == "ham10000":
        metadata = os.path.join(DATASET["root"], DATASET["metadata"])
        return {"metadata": metadata}
    return {}


def manifest_params():
    """Only the dataset keys the manifest depends on, so unrelated edits rerun nothing."""
    keys = {
        "synthetic": (),
        "ham10000": ("metadata", "mapping"),
        "folder": ("benign_classes", "malignant_classes"),
    }[DATASET["kind"]]
    params = {key: DATASET[key] for key in keys}
    params.update(
        kind=DATASET["kind"], root=dataset_root(), on_bad_image=DATASET["on_bad_image"]
    )
    return params


def preprocess_params():
    """Every stage parameter, as one dict: a change reruns the shards and nothing upstream."""
    return Preprocessing.from_config(
        config["preprocess"], config["image_size"]
    ).to_dict()


def shard_files():
    return expand(f"{RESULTS}/preprocessed/shard_{{shard}}.npz", shard=SHARDS)


def all_targets():
    return [
        f"{RESULTS}/data/manifest.csv",
        f"{RESULTS}/data/splits.csv",
        f"{RESULTS}/data/leakage.csv",
        *shard_files(),
        f"{RESULTS}/figures/preprocess_stages.png",
    ]
