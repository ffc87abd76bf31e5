"""The teacher stage: backbones and their offline weights, the fusion head, the feature
cache, head / end-to-end / fine-tuning training, and the soft labels students reuse."""
