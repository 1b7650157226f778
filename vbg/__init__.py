"""vbg: real-time video background replacement.

Data flow (one module per stage):

    capture -> segment -> smooth -> matte -> composite -> sinks

Frame conventions used everywhere in the runtime:

* ``Frame``: ``numpy.ndarray``, dtype ``uint8``, shape ``(H, W, 3)``, colour
  order **BGR** (OpenCV's native order), C-contiguous.
* ``Mask``: ``numpy.ndarray``, dtype ``float32``, shape ``(h, w)``, values in
  ``[0, 1]``, 1 = person. Low-resolution masks come at the model's size.
* ``Alpha``: ``numpy.ndarray``, dtype ``float32``, shape ``(H, W)``, values in
  ``[0, 1]`` at frame size (the output of the matte stage).

The runtime never imports torch; training lives in ``vbg.train``.

The Python API::

    import vbg
    vbg.convert("talk.mp4", "out.mp4", bg="beach", threshold=0.6)   # as ``vbg --input``
    with vbg.Pipeline(vbg.Settings(bg="blur:30")) as p:             # frame by frame
        out = p.process(frame)                                      # out.frame: BGR uint8
"""

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

# The API is imported on first use (PEP 562), so ``vbg --help`` and ``vbg models`` don't load ONNX Runtime.
_API = {"convert": "vbg.apps.batch", "VbgError": "vbg.errors", "Pipeline": "vbg.pipeline", "Settings": "vbg.settings"}

if TYPE_CHECKING:
    from .apps.batch import convert
    from .errors import VbgError
    from .pipeline import Pipeline
    from .settings import Settings


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'vbg' has no attribute {name!r}")


__all__ = ["Pipeline", "Settings", "VbgError", "convert", "__version__"]
