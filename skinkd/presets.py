"""Teacher presets, importable without Keras (the Snakefile resolves them at parse time)."""

TEACHER_PRESETS: dict[str, list[str]] = {
    # The paper: two CNN streams fused on 7x7 maps, plus a ViT class token.
    "paper": ["resnet152v2", "convnext_base", "vit_b16"],
    # The same shape at CPU cost.
    "small": ["efficientnet_b0", "mobilenet_v3_small", "vit_ti16"],
    # For tests and the synthetic default (no pretrained weights exist for these).
    "tiny": ["tiny_cnn", "tiny_vit"],
}
