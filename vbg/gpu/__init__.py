"""The NVIDIA GPU path: TensorRT engines and a CuPy pipeline.

* ``device``: which GPU and TensorRT this machine has (one-line refusals when not).
* ``fp16``: FP32 ONNX -> FP16 ONNX for strongly typed TensorRT builds.
* ``engine``: build, name, find and check TensorRT engines (``build_engine.py``).
* ``kernels``: CUDA kernels for the per-frame stages, each with the NumPy
  reference it must match.
* ``pipeline``: ``GpuPipeline``, frames stay on the GPU from upload to download.

Nothing here imports ``tensorrt`` or ``cupy`` at module level, so the CPU-only
runtime can import the package (and test its pure-Python parts) without them.
"""
