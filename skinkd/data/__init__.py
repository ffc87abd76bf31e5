"""The data stage: reading images and labelled sets, the manifest, the split, hashing, the
synthetic set, the six preprocessing stages, the preprocessed cache and augmentation.

Kept free of Keras, TensorFlow and Snakemake: the edge install imports parts of it."""
