"""Meta-architectures (META_ARCH_REGISTRY)."""
from .acar_net import ACARNet

__all__ = ["ACARNet"]
