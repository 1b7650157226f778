"""TensorRT engines: build, name, find, and check them against this machine.

An engine is tied to one GPU model and one TensorRT version, so its name says
both, plus the model and a hash of the ONNX it came from::

    engines/<model>-<sha8>-<gpu>-trt<version>-fp16.engine   (+ .json metadata)

``sha8`` is the first 8 hex digits of the SHA-256 of the model's ONNX file
(the one its spec points at), so a re-exported model never picks up a stale
engine. Engines live in ``$VBG_ENGINES`` when set, else ``engines/`` in a
checkout and ``<config dir>/engines`` for installed copies.

Builds are FP16. The default is a strongly typed network from an FP16 ONNX
(converted on the fly from FP32 when needed), which is the only way TensorRT
11 offers; ``builder_fp16=True`` instead uses the builder's FP16 flag on the
FP32 ONNX, where the installed TensorRT (10.x) still has it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import VbgError
from ..models import bundled_models_dir, resolve_model, user_dir
from ..paths import config_dir
from ..spec import ModelSpec
from .device import GpuInfo, has_module, probe_gpu, require_cupy, require_onnx, require_tensorrt, tensorrt_version
from .fp16 import is_fp16, to_fp16

log = logging.getLogger(__name__)

PRECISION = "fp16"
MAX_BATCH_LIMIT = 256
REBUILD = "python build_engine.py --model {model}"


# --- where engines live --------------------------------------------------
def repo_root() -> Path | None:
    """The checkout root when running from one (it holds build_engine.py), else None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "build_engine.py").is_file() else None


def engine_dirs() -> list[Path]:
    """Where to look for engines, in order."""
    if env := os.environ.get("VBG_ENGINES"):
        return [Path(env).expanduser()]
    dirs = []
    if (root := repo_root()) is not None:
        dirs.append(root / "engines")
    dirs.append(config_dir() / "engines")
    return dirs


def default_out_dir() -> Path:
    return engine_dirs()[0]


# --- names ---------------------------------------------------------------
def onnx_sha8(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:8]


def safe_model_name(name: str) -> str:
    """Model name as it appears in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def engine_name(model: str, sha8: str, gpu_slug: str, trt_version: str) -> str:
    return f"{safe_model_name(model)}-{sha8}-{gpu_slug}-trt{trt_version}-{PRECISION}.engine"


def parse_engine_name(filename: str, model: str) -> tuple[str, str, str] | None:
    """``(sha8, gpu_slug, trt_version)`` from an engine file name for ``model``, or None."""
    m = re.fullmatch(re.escape(safe_model_name(model))
                     + rf"-([0-9a-f]{{8}})-(.+)-trt([0-9][0-9A-Za-z.]*)-{PRECISION}\.engine", filename)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def rebuild_hint(spec: ModelSpec) -> str:
    """The build command for this model: by name when it is registered, else by spec path."""

    registered = spec.path is None or spec.path.parent.resolve() in (bundled_models_dir().resolve(), user_dir().resolve())
    return REBUILD.format(model=spec.name if registered else spec.path)


# --- shapes --------------------------------------------------------------
def input_shape(spec: ModelSpec, batch: int) -> tuple[int, int, int, int]:
    """The model's input tensor shape for a batch, in the spec's layout."""
    i = spec.input
    return (batch, 3, i.height, i.width) if i.layout == "NCHW" else (batch, i.height, i.width, 3)


Shape = tuple[int, ...]


def resolve_profile(onnx_shape: Sequence[int], spec: ModelSpec, max_batch: int,
                    opt_batch: int | None = None) -> tuple[Shape, Shape, Shape] | None:
    """Optimisation profile (min, opt, max) for the model input, or None when it is static.

    ``onnx_shape`` is the input as the ONNX declares it, -1 for a dynamic
    dimension. A fixed batch in the ONNX caps ``max_batch``; a fixed spatial
    size must agree with the spec.
    """
    if not 1 <= max_batch <= MAX_BATCH_LIMIT:
        raise VbgError(f"max batch {max_batch} out of range", f"use 1 to {MAX_BATCH_LIMIT}")
    want = input_shape(spec, 1)
    if len(onnx_shape) != 4:
        raise VbgError(f"model {spec.name}: input has {len(onnx_shape)} dimensions, expected 4 ({spec.input.layout})",
                       "fix the spec's input.layout or re-export the model")
    for axis in range(1, 4):
        if onnx_shape[axis] not in (-1, want[axis]):
            raise VbgError(f"model {spec.name}: ONNX input is {tuple(onnx_shape)}, the spec says "
                           f"{spec.input.layout} {spec.input.width}x{spec.input.height}",
                           "fix the spec's input size or layout")
    if all(d != -1 for d in onnx_shape):
        return None
    if onnx_shape[0] != -1:
        max_batch = onnx_shape[0]
    opt = max(1, min(max_batch, opt_batch or max_batch))
    lo = 1 if onnx_shape[0] == -1 else max_batch
    return input_shape(spec, lo), input_shape(spec, opt), input_shape(spec, max_batch)


def onnx_input_shape(path: str | Path, name: str) -> tuple[int, ...]:
    """The named graph input's shape, -1 for symbolic or unknown dimensions."""
    onnx = require_onnx()
    model = onnx.load(str(path), load_external_data=False)
    for inp in model.graph.input:
        if inp.name == name:
            dims = inp.type.tensor_type.shape.dim
            return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in dims)
    names = ", ".join(i.name for i in model.graph.input)
    raise VbgError(f"ONNX {Path(path).name} has no input {name!r} (has {names})", "fix the spec's input.name")


# --- metadata and checks ---------------------------------------------------
@dataclass(frozen=True)
class EngineMeta:
    """What an engine was built from and for; saved as JSON beside it."""

    model: str
    onnx_sha8: str
    gpu: str  # slug
    gpu_name: str
    compute_capability: str
    tensorrt: str
    precision: str
    mode: str  # "strongly-typed" | "builder-fp16"
    max_batch: int
    opt_batch: int
    input_name: str
    output_name: str
    built: str

    @classmethod
    def load(cls, path: Path) -> EngineMeta | None:
        try:
            d = json.loads(path.read_text())
            return cls(**{k: d[k] for k in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        _write_atomic(path, (json.dumps(asdict(self), indent=2) + "\n").encode())


def meta_path(engine: Path) -> Path:
    return engine.with_suffix(".json")


def engine_identity(path: Path, model: str) -> tuple[str, str, str] | None:
    """(sha8, gpu_slug, trt_version) of an engine: from its metadata, else from its name."""
    meta = EngineMeta.load(meta_path(path))
    if meta is not None:
        return meta.onnx_sha8, meta.gpu, meta.tensorrt
    return parse_engine_name(path.name, model)


def check_engine(path: Path, spec: ModelSpec, gpu_slug: str, trt_version: str,
                 sha8: str | None = None) -> None:
    """Refuse (VbgError) an engine built for another GPU, TensorRT version or ONNX."""
    fix = f"rebuild it: {rebuild_hint(spec)}"
    if not path.is_file():
        raise VbgError(f"engine {path} not found", f"build it: {rebuild_hint(spec)}")
    ident = engine_identity(path, spec.name)
    if ident is None:
        raise VbgError(f"cannot tell which GPU and TensorRT engine {path.name} was built for", fix)
    e_sha, e_gpu, e_trt = ident
    if e_gpu != gpu_slug or e_trt != trt_version:
        raise VbgError(f"engine {path.name} was built for {e_gpu} with TensorRT {e_trt}; "
                       f"this machine has {gpu_slug} with TensorRT {trt_version}", fix)
    sha8 = sha8 or onnx_sha8(spec.onnx)
    if e_sha != sha8:
        raise VbgError(f"engine {path.name} was built from another version of {spec.onnx.name}", fix)


def find_engine(spec: ModelSpec, gpu_slug: str, trt_version: str) -> Path | None:
    """The engine for this model, GPU and TensorRT version, if one was built."""
    if not spec.onnx.is_file():
        return None
    name = engine_name(spec.name, onnx_sha8(spec.onnx), gpu_slug, trt_version)
    for d in engine_dirs():
        if (d / name).is_file():
            return d / name
    return None


def other_engines(spec: ModelSpec) -> list[Path]:
    """Engines for this model name, whatever GPU, TensorRT or ONNX they were built for."""
    found: list[Path] = []
    for d in engine_dirs():
        if d.is_dir():
            found += sorted(p for p in d.glob(f"{safe_model_name(spec.name)}-*.engine")
                            if parse_engine_name(p.name, spec.name) is not None)
    return found


def diagnose(spec: ModelSpec) -> VbgError:
    """Why the TensorRT backend cannot run this model here, as a one-line error."""
    try:
        trt_version = str(require_tensorrt().__version__)
        require_cupy()
        gpu = probe_gpu()
    except VbgError as exc:
        return exc
    if not spec.onnx.is_file():
        return VbgError(f"model file {spec.onnx} not found", "check the spec's onnx path")
    sha8 = onnx_sha8(spec.onnx)
    for p in other_engines(spec):
        try:
            check_engine(p, spec, gpu.slug, trt_version, sha8)
        except VbgError as exc:
            return exc
    return VbgError(f"no TensorRT engine for model {spec.name} on this GPU ({gpu.slug}, TensorRT {trt_version})",
                    f"build one: {rebuild_hint(spec)}")


# --- building --------------------------------------------------------------
def _write_atomic(path: Path, data: bytes | memoryview) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _resolve_spec(model: str | Path | ModelSpec | None) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model

    return resolve_model(None if model is None else str(model))


def trt_major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def build_engine(model: str | Path | ModelSpec | None = None, out_dir: str | Path | None = None, *,
                 max_batch: int = 8, opt_batch: int | None = None, workspace_mb: int = 1024,
                 timing_cache: str | Path | None = None, use_timing_cache: bool = True,
                 builder_fp16: bool = False, force: bool = False) -> Path:
    """Build an FP16 TensorRT engine for a model on this machine's GPU; returns its path.

    ``timing_cache`` defaults to ``<out_dir>/<gpu>-trt<version>.cache``: it
    is read when present and written back, so rebuilding (other batch sizes,
    re-exported models) skips most kernel timing.
    """
    spec = _resolve_spec(model)
    if not spec.onnx.is_file():
        raise VbgError(f"model file {spec.onnx} not found", "check the spec's onnx path")
    if workspace_mb < 16:
        raise VbgError(f"workspace {workspace_mb} MB is too small", "use --workspace-mb 256 or more")
    onnx_shape = onnx_input_shape(spec.onnx, spec.input.name)
    profile_shapes = resolve_profile(onnx_shape, spec, max_batch, opt_batch)
    trt = require_tensorrt()
    gpu = probe_gpu()
    version = str(trt.__version__)
    if builder_fp16 and not hasattr(trt.BuilderFlag, "FP16"):
        raise VbgError(f"TensorRT {version} has no FP16 builder flag (TensorRT 11 builds strongly typed only)",
                       "drop --builder-fp16: the default FP16-ONNX build works on every version")
    sha8 = onnx_sha8(spec.onnx)
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    dest = out / engine_name(spec.name, sha8, gpu.slug, version)
    if dest.is_file() and not force:
        log.info("engine %s exists (use force to rebuild)", dest)
        return dest
    cache_path = Path(timing_cache) if timing_cache else out / f"{gpu.slug}-trt{version}.cache"

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if not builder_fp16 and trt_major(version) < 11:  # 11 is always strongly typed; the flag is deprecated
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory(prefix="vbg-trt-") as td:

        if builder_fp16 or is_fp16(spec.onnx):
            src = spec.onnx
        else:
            src = to_fp16(spec.onnx, Path(td) / f"{safe_model_name(spec.name)}-fp16.onnx")
        if not parser.parse_from_file(str(src)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise VbgError(f"TensorRT cannot parse {spec.onnx.name}: {(errors or ['unknown error'])[0]}",
                           "check that the model exports to standard ONNX ops (opset 13+)")
    outputs = {network.get_output(i).name for i in range(network.num_outputs)}
    if spec.output.name not in outputs:
        raise VbgError(f"model {spec.name}: output {spec.output.name!r} not in ONNX (has {', '.join(sorted(outputs))})",
                       "fix the spec's output.name")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if builder_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if profile_shapes is not None:
        profile = builder.create_optimization_profile()
        profile.set_shape(spec.input.name, *profile_shapes)
        config.add_optimization_profile(profile)
    cache = None
    if use_timing_cache:
        blob = cache_path.read_bytes() if cache_path.is_file() else b""
        cache = config.create_timing_cache(blob)
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            log.warning("timing cache %s does not fit this GPU/TensorRT; starting a fresh one", cache_path)
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, ignore_mismatch=False)

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise VbgError(f"TensorRT failed to build an engine for {spec.name} (its log is above)",
                       "try a larger --workspace-mb or a smaller --max-batch")
    log.info("built %s in %.1f s", dest.name, time.perf_counter() - t0)
    _write_atomic(dest, memoryview(serialized))
    if cache is not None:
        _write_atomic(cache_path, memoryview(config.get_timing_cache().serialize()))
    max_b, opt_b = (profile_shapes[2][0], profile_shapes[1][0]) if profile_shapes else (onnx_shape[0],) * 2
    EngineMeta(model=spec.name, onnx_sha8=sha8, gpu=gpu.slug, gpu_name=gpu.name,
               compute_capability=gpu.compute_capability, tensorrt=version, precision=PRECISION,
               mode="builder-fp16" if builder_fp16 else "strongly-typed", max_batch=max_b, opt_batch=opt_b,
               input_name=spec.input.name, output_name=spec.output.name,
               built=time.strftime("%Y-%m-%dT%H:%M:%S%z")).save(meta_path(dest))
    return dest


def check_engine_here(path: str | Path, model: str | Path | ModelSpec | None = None) -> GpuInfo:
    """Check an existing engine against this machine's GPU and TensorRT; VbgError when it does not fit."""
    spec = _resolve_spec(model)
    version = str(require_tensorrt().__version__)
    gpu = probe_gpu()
    check_engine(Path(path), spec, gpu.slug, version)
    return gpu


def status() -> dict[str, Any]:
    """What the GPU path sees here (for ``vbg doctor``): never raises."""
    out: dict[str, Any] = {"tensorrt": tensorrt_version(), "cupy": has_module("cupy"), "gpu": None}
    try:
        out["gpu"] = probe_gpu().name
    except VbgError as exc:
        out["gpu_error"] = exc.line()
    return out

