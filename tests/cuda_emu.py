"""A CPU stand-in for the part of CuPy that ``vbg.gpu`` uses, for machines without a GPU.

``RawModule`` compiles the CUDA source as C++ (g++, ``-ffp-contract=off``:
every float operation rounds on its own, like the kernels built with
``--fmad=false``) and runs a launch block by block, thread by thread. A
launch is checked the way a real one would fail: device arrays only,
C-contiguous, of the parameter's element type; scalars as NumPy scalars of
the parameter's exact type; grid and block within CUDA's limits.

What this cannot show: anything about the real device (races between
threads, launch failures, NVRTC-only compile errors, timings). Kernels here
use no shared memory or synchronisation, so thread order does not matter.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import re
import shutil
import subprocess
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

SHIM = r"""
#include <math.h>
#include <stdlib.h>
#include <stddef.h>
#include <algorithm>
#include <type_traits>
#include <utility>
struct uint3_ { unsigned x, y, z; };
static uint3_ blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
using std::min;
using std::max;
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline float __double2float_rn(double a) { return (float)a; }
"""

LAUNCH = r"""
template <typename... A, std::size_t... I>
static void call_(void (*f)(A...), void** a, std::index_sequence<I...>) {
    f(*static_cast<typename std::remove_cv<A>::type*>(a[I])...);
}
template <typename... A>
static void launch_(void (*f)(A...), const unsigned* g, const unsigned* b, void** a) {
    gridDim = {g[0], g[1], g[2]};
    blockDim = {b[0], b[1], b[2]};
    for (unsigned bz = 0; bz < g[2]; ++bz)
        for (unsigned by = 0; by < g[1]; ++by)
            for (unsigned bx = 0; bx < g[0]; ++bx)
                for (unsigned tz = 0; tz < b[2]; ++tz)
                    for (unsigned ty = 0; ty < b[1]; ++ty)
                        for (unsigned tx = 0; tx < b[0]; ++tx) {
                            blockIdx = {bx, by, bz};
                            threadIdx = {tx, ty, tz};
                            call_(f, a, std::index_sequence_for<A...>{});
                        }
}
"""

_TYPES: dict[str, type] = {"u8": np.uint8, "unsigned char": np.uint8, "int": np.int32, "float": np.float32, "double": np.float64}
_CTYPES: dict[type, Any] = {np.int32: ctypes.c_int32, np.float32: ctypes.c_float, np.float64: ctypes.c_double}


def available() -> bool:
    return shutil.which("g++") is not None


@functools.cache
def _compile(code: str) -> tuple[ctypes.CDLL, dict[str, list[tuple[bool, type]]]]:
    """Compile ``code`` (CUDA) as C++; -> the library and each kernel's parameters (is_pointer, dtype)."""
    sigs: dict[str, list[tuple[bool, type]]] = {}
    for name, params in re.findall(r"__global__\s+void\s+(\w+)\s*\(([^)]*)\)", code):
        out: list[tuple[bool, type]] = []
        for p in params.split(","):
            decl = re.sub(r"\b(const|__restrict__)\b", " ", p).strip()
            decl = decl.rsplit(None, 1)[0] if not decl.endswith("*") else decl  # drop the parameter name
            base = decl.replace("*", " ").strip()
            base = " ".join(base.split())
            out.append(("*" in p, _TYPES[base]))
        sigs[name] = out
    body = SHIM + code + LAUNCH + "".join(
        f'extern "C" void emu_{n}(const unsigned* g, const unsigned* b, void** a) {{ launch_({n}, g, b, a); }}\n'
        for n in sigs)
    d = Path(tempfile.mkdtemp(prefix="vbg-cuda-emu-"))
    src = d / "k.cpp"
    src.write_text(body)
    lib = d / f"k{hashlib.sha1(body.encode()).hexdigest()[:12]}.so"
    cmd = ["g++", "-O2", "-std=c++14", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC",
           "-o", str(lib), str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"g++ failed:\n{r.stderr[-4000:]}")
    return ctypes.CDLL(str(lib)), sigs


# --- arrays ----------------------------------------------------------------------------------
class _Memory:
    def __init__(self, arr: EmuArray) -> None:
        self._arr = arr
        self.ptr = arr.ctypes.data

    def copy_from_host_async(self, src: int, size: int, stream: Any = None) -> None:
        assert size <= self._arr.nbytes and self._arr.flags.c_contiguous
        ctypes.memmove(self.ptr, src, size)

    def copy_to_host_async(self, dst: int, size: int, stream: Any = None) -> None:
        assert size <= self._arr.nbytes and self._arr.flags.c_contiguous
        ctypes.memmove(dst, self.ptr, size)


class EmuArray(np.ndarray):
    """A "device" array: a NumPy array that kernels accept and that must be ``get()`` to reach the host."""

    @property
    def data(self) -> _Memory:  # type: ignore[override]
        return _Memory(self)

    def get(self, stream: Any = None, **_: Any) -> np.ndarray:
        return np.array(self.view(np.ndarray), copy=True)

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        assert arr.shape == self.shape
        np.copyto(self.view(np.ndarray), arr)


def _dev(x: Any) -> Any:
    return x.view(EmuArray) if isinstance(x, np.ndarray) and not isinstance(x, EmuArray) else x


# --- the module ----------------------------------------------------------------------------
class _Kernel:
    def __init__(self, lib: ctypes.CDLL, name: str, params: list[tuple[bool, type]]) -> None:
        self.name = name
        self.params = params
        self._fn = getattr(lib, f"emu_{name}")

    def __call__(self, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...]) -> None:
        g = (tuple(grid) + (1, 1))[:3]
        b = (tuple(block) + (1, 1))[:3]
        assert all(isinstance(v, int) and v >= 1 for v in g + b), (self.name, g, b)
        assert b[0] * b[1] * b[2] <= 1024 and g[1] <= 65535 and g[2] <= 65535, (self.name, g, b)
        assert len(args) == len(self.params), f"{self.name}: {len(args)} args for {len(self.params)} params"
        keep: list[Any] = []  # the ctypes values, alive until the call returns
        for i, (a, (ptr, dt)) in enumerate(zip(args, self.params)):
            where = f"{self.name} arg {i}"
            if ptr:
                assert isinstance(a, EmuArray), f"{where}: not a device array ({type(a).__name__})"
                assert a.flags.c_contiguous, f"{where}: not C-contiguous"
                assert a.dtype == dt, f"{where}: {a.dtype} for {np.dtype(dt)}"
                keep.append(ctypes.c_void_p(a.ctypes.data))
            else:
                assert type(a) is dt, f"{where}: {type(a).__name__} for {np.dtype(dt)}"
                keep.append(_CTYPES[dt](np.asarray(a).item()))
        ptrs = (ctypes.c_void_p * max(1, len(keep)))(*[ctypes.addressof(k) for k in keep])
        self._fn((ctypes.c_uint * 3)(*g), (ctypes.c_uint * 3)(*b), ptrs)


class RawModule:
    def __init__(self, code: str, options: tuple[str, ...] = (), **_: Any) -> None:
        self.options = options
        self._lib, self._sigs = _compile(code)

    def get_function(self, name: str) -> _Kernel:
        return _Kernel(self._lib, name, self._sigs[name])


class Stream:
    def __init__(self, non_blocking: bool = False, **_: Any) -> None:
        self.ptr = 0

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def synchronize(self) -> None:
        pass


class Event:
    def __init__(self, *_: Any, **__: Any) -> None:
        self.t = 0.0

    def record(self, stream: Any = None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass


def make_cupy() -> tuple[types.ModuleType, types.ModuleType]:
    """Fresh ``cupy`` and ``cupyx`` stand-ins."""
    cp = types.ModuleType("cupy")
    cp.RawModule = RawModule  # type: ignore[attr-defined]
    cp.ndarray = EmuArray  # type: ignore[attr-defined]

    def wrap(fn: Any) -> Any:
        @functools.wraps(fn)
        def f(*a: Any, **k: Any) -> Any:
            return _dev(fn(*a, **k))
        return f

    def getattr_(name: str) -> Any:
        obj = getattr(np, name)
        return wrap(obj) if callable(obj) and not isinstance(obj, type) else obj

    cp.__getattr__ = getattr_  # type: ignore[method-assign]  # the rest: NumPy's, on device arrays
    cp.asarray = wrap(lambda a, dtype=None: np.array(a, dtype=dtype, copy=True))  # type: ignore[attr-defined]
    cuda = types.SimpleNamespace(
        Stream=Stream, Event=Event, get_current_stream=lambda: Stream(),
        get_elapsed_time=lambda a, b: (b.t - a.t) * 1000.0,
        runtime=types.SimpleNamespace(
            getDeviceCount=lambda: 1,
            getDeviceProperties=lambda i: {"name": b"CPU emulation", "major": 0, "minor": 0,
                                           "totalGlobalMem": 1 << 30}))
    cp.cuda = cuda  # type: ignore[attr-defined]
    cpx = types.ModuleType("cupyx")
    cpx.empty_pinned = lambda shape, dtype=np.float64: np.empty(shape, dtype)  # type: ignore[attr-defined]
    return cp, cpx
