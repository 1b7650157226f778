"""Training, export and evaluation of vbg's segmentation models.

Imported only by ``vbg train``, ``vbg export`` and ``vbg eval``. Everything
that needs torch goes through :func:`require_torch`, so a missing ``train``
extra gives one clean error instead of a traceback; the runtime never
imports this package.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import VbgError


def require_torch() -> ModuleType:
    """Import torch or raise a VbgError that says how to install it."""
    try:
        import torch
    except ImportError:
        raise VbgError("training needs PyTorch, which is not installed",
                       'pip install "vbg[train]"') from None
    return torch
