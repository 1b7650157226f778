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
"""

__version__ = "0.1.0"
