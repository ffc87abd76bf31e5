"""What runs on an edge device: TFLite export and the model card, inference, ``skinkd
predict``, ``skinkd evaluate`` and the command line.

Nothing here loads TensorFlow, Keras, pandas or Snakemake at import (a test checks it):
the ``edge`` install has numpy, OpenCV and ai-edge-litert only."""
