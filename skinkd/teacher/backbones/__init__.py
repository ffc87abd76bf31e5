"""Teacher backbones: the registry (``registry``), their architectures (``vit``,
``mobilenetv2``) and the weight files they load (``torch_legacy``, ``weights``).

Kept free of imports so that reading a weights file does not load a deep-learning framework.
"""
