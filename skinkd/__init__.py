"""skinkd: knowledge distillation of a tiny benign-vs-malignant skin-lesion classifier."""

from skinkd.errors import ConfigError, DataError, SkinkdError

__all__ = ["ConfigError", "DataError", "SkinkdError"]
__version__ = "0.1.0"
