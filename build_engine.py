#!/usr/bin/env python3
"""Build an FP16 TensorRT engine for a vbg model on this machine's GPU.

    python build_engine.py --model unet-lite-m --max-batch 8

Writes ``engines/<model>-<sha8>-<gpu>-trt<version>-fp16.engine``; the
``tensorrt`` backend (and ``--backend auto``) picks it up from there. The work
is done by ``vbg.gpu.engine``; the command is ``vbg.apps.build_engine``.
"""

import sys

from vbg.apps.build_engine import main

if __name__ == "__main__":
    sys.exit(main())
