"""The PySide6 tuning window (``vbg gui``) and the ``vbg live`` preview."""
