"""Live: capture thread -> processing thread -> sinks.

``LiveLoop`` is the engine shared by ``vbg live`` and ``vbg gui``. The
capture thread keeps only the newest frame; the processing thread takes it,
runs the pipeline and hands the result to the sinks (virtual camera) and to
``on_delivery`` (the GUI), so output follows the camera's rate and frames
are dropped, never queued, when processing is slower. Latency is measured
from the capture timestamp to the moment every sink has the frame.

With ``pause_unwatched``, frames are not processed while every sink says
that nobody watches it (a virtual camera that no application has open) and
no window shows them: no CPU goes to a call that has not started.

Settings changes (``update``, the one mailbox) never block the caller:
matte, smoothing and background changes apply from the next frame; a new
camera or model is opened on the processing thread.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .backends import create_backend
from .backends.base import Backend
from .errors import VbgError
from .io.capture import CapturedFrame, CaptureThread, Source
from .models import resolve_model
from .outputs import Output
from .pipeline import FramePipeline, check_size, make_pipeline
from .settings import Settings
from .sinks.base import Sink
from .spec import ModelSpec
from .stages.backgrounds import Background

log = logging.getLogger(__name__)

# Settings whose change needs a new capture / a new model; the rest apply per frame.
CAPTURE_KEYS = ("camera", "width", "height", "fps")
MODEL_KEYS = ("model", "backend")


@dataclass(frozen=True, eq=False)  # holds arrays: compare by identity
class Delivery:
    """One processed frame as handed to the GUI."""

    captured: CapturedFrame
    output: Output
    settings: Settings  # the settings it was processed with
    latency_ms: float  # capture -> processed and sent to the sinks

    @property
    def image(self) -> np.ndarray:
        return self.captured.image


@dataclass(frozen=True)
class LiveStats:
    frames: int  # delivered
    captured: int
    dropped: int  # captured frames never processed (processing was busy)
    fps: float
    latency_ms_p50: float
    latency_ms_p95: float
    stage_ms: dict[str, float] = field(default_factory=dict)  # last frame, per stage
    paused: int = 0  # captured frames skipped because no application watched
    cpu_ms_per_frame: float = 0.0  # the whole process's CPU time (all threads) per delivered frame
    model_runs: int = 0  # delivered frames the model ran on (the others reused its last mask)

    def summary_line(self) -> str:
        return (f"fps={self.fps:.1f} latency_ms_p50={self.latency_ms_p50:.1f} "
                f"latency_ms_p95={self.latency_ms_p95:.1f} cpu_ms_per_frame={self.cpu_ms_per_frame:.1f} "
                f"model_runs={self.model_runs}")


BackendFactory = Callable[[ModelSpec, str], Backend]


class LiveLoop:
    """Runs the live session: one capture thread and one processing thread.

    Use ``open()`` then ``start()`` (errors such as a missing camera raise
    ``VbgError`` in the caller), or ``start(background=True)`` to open on the
    processing thread, reporting failures through ``on_end``. The session
    ends on ``stop()``, ``max_frames``, the end of a file (unless
    ``loop_file``), or a lost source; ``end_reason`` says which.
    """

    def __init__(self, settings: Settings, *, loop_file: bool = False, max_frames: int | None = None,
                 sinks: Sequence[Sink] = (),
                 on_delivery: Callable[[Delivery], None] | None = None,
                 on_end: Callable[[str, bool], None] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 backend_factory: BackendFactory | None = None, pause_unwatched: bool = False,
                 reconnect: bool = True, on_kept: Callable[[Settings], None] | None = None) -> None:
        self.settings = settings
        # a model or backend change failed to load: called with the settings in force (the running model
        # and backend, the rest of that change applied), so a picker can go back
        self.on_kept = on_kept
        self.reconnect = reconnect  # a lost source is retried with backoff until it is back (or stop())
        self.reconnects = 0
        self.pause_unwatched = pause_unwatched
        self.loop_file = loop_file
        self.max_frames = max_frames
        self.on_delivery = on_delivery
        self.on_end = on_end
        self.on_error = on_error
        self._backend_factory = backend_factory or (lambda spec, name: create_backend(spec, name))
        self._sinks: list[Sink] = list(sinks)
        self._sink_lock = threading.Lock()
        self._pending: tuple[Settings, Background | None] | None = None  # the one settings mailbox
        self._pending_lock = threading.Lock()
        self._teardown_lock = threading.Lock()
        self._capture: CaptureThread | None = None
        self._backend: Backend | None = None
        self._pipeline: FramePipeline | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ended = threading.Event()
        self.end_reason: str | None = None
        self.lost = False  # True when the session ended on an error (source lost, failed switch)
        self._stats_lock = threading.Lock()
        self._reset_stats()

    # -- setup ---------------------------------------------------------
    def _make_capture(self, s: Settings) -> CaptureThread:
        source = Source.parse(s.camera)
        cap = CaptureThread(source, width=s.width, height=s.height, fps=s.fps, mirror=s.mirror,
                            loop=self.loop_file)
        with s.blame("camera"):
            cap.open()
        try:  # a source too small for the model is an error at once, not a warning per frame
            check_size(*cap.size, f"camera {cap.source}")
        except VbgError:
            cap.stop()
            raise
        return cap

    def _make_pipeline(self, s: Settings, background: Background | None = None) -> tuple[Backend, FramePipeline]:
        """A backend and pipeline for ``s``; the pipeline takes ``background`` over (it closes it)."""
        try:
            with s.blame("model"):
                spec = resolve_model(s.model)
            backend = self._backend_factory(spec, s.backend)
        except BaseException:
            if background is not None:
                background.close()
            raise
        try:
            return backend, make_pipeline(s, backend, background=background, fps=self.rate(s),
                                          own_background=True)
        except BaseException:
            backend.close()
            if background is not None:
                background.close()
            raise

    def rate(self, s: Settings | None = None) -> float:
        """Frames per second the pipeline sees: the source's, or --max-fps when lower."""
        s = s or self.settings
        fps = self._capture.fps if self._capture is not None else s.fps
        return min(fps, s.max_fps) if s.max_fps > 0 else fps

    def open(self) -> LiveLoop:
        """Open the source and load the model (raises VbgError)."""
        if self._capture is None:
            self._capture = self._make_capture(self.settings)
        if self._pipeline is None:
            self._backend, self._pipeline = self._make_pipeline(self.settings)
        return self

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the source's frames, once open."""
        return self._capture.size if self._capture else (self.settings.width, self.settings.height)

    @property
    def source_fps(self) -> float:
        return self._capture.fps if self._capture else self.settings.fps

    @property
    def capture(self) -> CaptureThread | None:
        return self._capture

    @property
    def backend_name(self) -> str:
        """What runs the model, for the readout: e.g. ``cpu (auto)``, ``tensorrt``."""
        b = self._backend
        if b is None:
            return ""
        choice = getattr(b, "choice", None)
        name = choice.backend if choice is not None else b.name
        return f"{name} (auto)" if self.settings.backend == "auto" else name

    def start(self, background: bool = False) -> LiveLoop:
        if self.running:
            return self
        if not background:
            self.open()
        self._stop.clear()
        self._ended.clear()
        self.end_reason, self.lost = None, False
        self._reset_stats()
        self._thread = threading.Thread(target=self._run, name="vbg-process", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the session ends; True if it did."""
        return self._ended.wait(timeout)

    def stop(self) -> None:
        """End the session and release the camera and model (sinks stay with their owner).

        The processing thread releases them itself when it ends; if it is still inside a long call
        (a model loading, a slow inference) after a while, it does so when that call returns.
        """
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(10.0)
            if t.is_alive():
                log.warning("the processing thread is still busy: it releases the camera and model when done")
        if t is None or not t.is_alive():
            self._teardown()
        self._thread = None
        if self.end_reason is None:
            self.end_reason = "stopped"
        self._ended.set()

    def _teardown(self) -> None:
        """Release the capture, the pipeline (and the background it owns) and the backend; idempotent."""
        with self._teardown_lock:
            self._drop_capture()
            pipeline, self._pipeline = self._pipeline, None
            backend, self._backend = self._backend, None
            if pipeline is not None:
                pipeline.close()
            if backend is not None:
                backend.close()
            with self._pending_lock:
                pending, self._pending = self._pending, None
            if pending is not None and pending[1] is not None:
                pending[1].close()  # a background handed over but never applied

    close = stop

    def _drop_capture(self) -> None:
        """Stop and forget the capture, keeping its counts in the session stats."""
        cap, self._capture = self._capture, None
        if cap is not None:
            cap.stop()
            with self._stats_lock:
                self._captured0 += cap.captured
                self._dropped0 += cap.dropped

    # -- live changes ----------------------------------------------------
    def update(self, settings: Settings, background: Background | None = None) -> None:
        """New settings, applied from the next frame; never blocks on capture or inference.

        ``background``: ``settings.bg`` already opened (the GUI checks a file
        that way), so it is not opened a second time; the loop takes it over.
        """
        with self._pending_lock:
            old, self._pending = self._pending, (settings, background)
        if old is not None and old[1] is not None and old[1] is not background:
            old[1].close()  # replaced before it was applied
        cap = self._capture
        if cap is not None:
            cap.mirror = settings.mirror  # per-frame flag: no restart

    def add_sink(self, sink: Sink) -> None:
        with self._sink_lock:
            self._sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        """Detach a sink; after this returns it gets no more frames (waits for one send at most)."""
        with self._sink_lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    # -- stats -------------------------------------------------------------
    def _reset_stats(self) -> None:
        with self._stats_lock:
            self._t_delivered = array("d")
            self._latency = array("d")
            self._cpu = array("d")  # time.process_time() at each delivery
            self._ran = array("b")  # 1 where the model ran for the delivered frame
            # totals and the first delivery's times: the history above is trimmed (memory stays flat)
            self._frames_total = self._runs_total = 0
            self._t0 = self._cpu0 = 0.0
            self._stage_ms: dict[str, float] = {}
            self._captured0 = self._dropped0 = 0  # counts of captures replaced by a camera switch
            self._paused = 0

    HISTORY = 18000  # deliveries kept for percentiles: 10 minutes at 30 fps

    def stats(self, window: float | None = None) -> LiveStats:
        """Session stats, or over the last ``window`` seconds (the GUI readout). Latency percentiles of
        the whole session cover its last ``HISTORY`` frames."""
        with self._stats_lock:
            times, lat = self._t_delivered, self._latency
            i = bisect.bisect_left(times, time.perf_counter() - window) if window else 0
            if window and len(times) - i < 2:
                i = max(0, len(times) - 2)  # slower than one frame a window: the last two deliveries' rate
            t, lt = times[i:], np.array(lat[i:], dtype=np.float64)  # copies: the arrays keep growing
            cpu, ran = self._cpu[i:], self._ran[i:]
            stage = dict(self._stage_ms)
            captured, dropped, paused = self._captured0, self._dropped0, self._paused
            total, runs, t0, cpu0 = self._frames_total, self._runs_total, self._t0, self._cpu0
        cap = self._capture
        if cap is not None:
            captured, dropped = captured + cap.captured, dropped + cap.dropped
        n = len(t)
        p50, p95 = (float(np.percentile(lt, 50)), float(np.percentile(lt, 95))) if n else (0.0, 0.0)
        if window is None:  # the whole session, from its totals
            fps = (total - 1) / (t[-1] - t0) if total > 1 and t[-1] > t0 else 0.0
            cpu_ms = (cpu[-1] - cpu0) * 1000.0 / (total - 1) if total > 1 else 0.0
            return LiveStats(total, captured, dropped, fps, p50, p95, stage, paused, cpu_ms, runs)
        fps = (n - 1) / (t[-1] - t[0]) if n > 1 and t[-1] > t[0] else 0.0
        cpu_ms = (cpu[-1] - cpu[0]) * 1000.0 / (n - 1) if n > 1 else 0.0
        return LiveStats(n, captured, dropped, fps, p50, p95, stage, paused, cpu_ms, int(sum(ran)))

    # -- the processing thread ---------------------------------------------
    def _unwatched(self) -> bool:
        """Nobody would see a processed frame now (see ``pause_unwatched``)."""
        if not self.pause_unwatched or self.on_delivery is not None:
            return False
        with self._sink_lock:
            sinks = list(self._sinks)
        return bool(sinks) and not any(s.watched for s in sinks)

    def _finish(self, reason: str, lost: bool) -> None:
        if self.end_reason is None:
            self.end_reason, self.lost = reason, lost
        (log.warning if lost else log.info)("live session ended: %s", reason)
        if self._capture is not None:
            self._capture.stop()
        self._ended.set()
        if self.on_end is not None:
            self.on_end(reason, lost)

    def _report(self, message: str) -> None:
        log.warning("%s", message)
        if self.on_error is not None:
            self.on_error(message)

    def _reconfigure(self, new: Settings, background: Background | None) -> None:
        """Apply new settings on the processing thread: the model and pipeline, then the camera."""
        old = self.settings
        kept = None
        try:
            self._apply_model_settings(new, background)
        except VbgError as exc:
            if self._pipeline is None or not new.differs(old, MODEL_KEYS):
                raise
            # the running model stays; the rest of the change (sliders, background, camera) still applies,
            # so one bad pick does not block every later change
            new = kept = new.replace(**{k: getattr(old, k) for k in MODEL_KEYS})
            self._apply_model_settings(new, None)
            self._report(exc.line())
        source = Source.parse(new.camera)
        if new.camera != old.camera or (source.is_camera and new.differs(old, CAPTURE_KEYS)):
            self._drop_capture()  # before opening: a camera cannot be opened twice
            self.settings = new
            self._capture = self._make_capture(new)
            self._capture.start()
            if self._pipeline is not None:
                self._pipeline.reset()
                self._pipeline.set_rate(self.rate(new))
        self.settings = new
        if kept is not None and self.on_kept is not None:
            self.on_kept(kept)

    def _apply_model_settings(self, new: Settings, background: Background | None) -> None:
        """A new model or backend builds a new pipeline; anything else updates the one there is.
        ``background`` is taken over: applied, or closed."""
        old = self.settings
        if background is not None and new.bg == old.bg:  # the background in use stays: nothing to apply
            background.close()
            background = None
        if new.differs(old, MODEL_KEYS):
            backend, pipeline = self._make_pipeline(new, background)
            if self._pipeline is not None:
                self._pipeline.close()
            if self._backend is not None:
                self._backend.close()
            self._backend, self._pipeline = backend, pipeline
        elif self._pipeline is not None:
            try:
                self._pipeline.update(new, background)
            except BaseException:
                if background is not None:
                    background.close()
                raise
            if new.mirror != old.mirror:
                self._pipeline.reset()  # the masks so far are of the unmirrored picture
            if new.max_fps != old.max_fps:
                self._pipeline.set_rate(self.rate(new))
        elif background is not None:
            background.close()

    BACKOFF = (0.5, 1.0, 2.0, 4.0, 5.0)  # seconds between tries to reopen a lost source

    def _wait_for_source(self, reason: str) -> bool:
        """The source was lost: say so, then try to reopen it with growing pauses until it is back
        (True) or the session is stopped (False). New settings (another camera) apply meanwhile."""
        self._report(f"{reason}; retrying until it is back")
        self._drop_capture()
        tries = 0
        while not self._stop.is_set():
            with self._pending_lock:
                pending, self._pending = self._pending, None
            if pending is not None:
                try:
                    self._apply_model_settings(*pending)
                except VbgError as exc:
                    self._report(exc.line())
                self.settings = pending[0]  # the capture is reopened below, with the new camera if it changed
            try:
                self._capture = self._make_capture(self.settings)
                self._capture.start()
            except VbgError as exc:
                if tries == 0:
                    log.info("cannot reopen the source yet: %s", exc.line())
                self._stop.wait(self.BACKOFF[min(tries, len(self.BACKOFF) - 1)])
                tries += 1
                continue
            self.reconnects += 1
            if self._pipeline is not None:
                self._pipeline.set_rate(self.rate())
            self._report(f"{self._capture.source} is back: resuming")
            return True
        return False

    def _run(self) -> None:
        try:
            self._process()
        except Exception as exc:  # a bug mid-session (a callback, a model switch): end clearly, not silently
            log.exception("live session failed")
            self._finish(f"live session failed: {exc}", True)
            self._teardown()
        finally:
            if self._stop.is_set():  # stop() may have given up waiting: release what is held
                self._teardown()

    def _process(self) -> None:
        try:
            self.open()
            if self._stop.is_set():
                return
            assert self._capture is not None
            self._capture.start()
        except VbgError as exc:
            self._finish(exc.line(), True)
            return
        except Exception as exc:  # a bug or an unexpected environment: end clearly, keep the trace in the log
            log.exception("live session failed to start")
            self._finish(f"live session failed to start: {exc}", True)
            return
        last_seq = -1
        paused = False
        next_slot = 0.0  # --max-fps: the earliest time the next frame may be processed
        while not self._stop.is_set():
            with self._pending_lock:
                pending, self._pending = self._pending, None
            if pending is not None:
                capture_before = self._capture
                try:
                    self._reconfigure(*pending)
                except VbgError as exc:
                    if self._capture is None:  # the old camera is closed and the new one failed
                        self._finish(exc.line(), True)
                        return
                    self._report(exc.line())
                if self._capture is not capture_before:
                    last_seq = -1
            cap, pipeline = self._capture, self._pipeline
            assert cap is not None and pipeline is not None
            if self.settings.max_fps > 0:  # --max-fps: wait out the rest of the frame slot, then take the newest
                wait = next_slot - time.perf_counter()
                if wait > 0 and self._stop.wait(min(wait, 0.1)):
                    break
                if wait > 0.1:
                    continue  # re-check the mailbox every 100 ms
            f = cap.wait_next(last_seq, timeout=0.1)
            if f is None:
                if cap.ended:
                    if cap.lost and self.reconnect:
                        if not self._wait_for_source(cap.end_reason or "source lost"):
                            break  # stopped while waiting
                        last_seq = -1
                        pipeline.reset()
                        continue
                    self._finish(cap.end_reason or "source ended", cap.lost)
                    return
                continue
            last_seq = f.seq
            if self.settings.max_fps > 0:
                next_slot = max(next_slot + 1.0 / self.settings.max_fps, time.perf_counter() - 0.5 / self.settings.max_fps)
            if self._unwatched():
                if not paused:
                    log.warning("no application is reading the virtual camera: processing paused")
                    paused = True
                with self._stats_lock:
                    self._paused += 1
                continue
            if paused:
                log.warning("an application opened the virtual camera: processing resumed")
                paused = False
                pipeline.reset()  # the smoother's history is from before the pause
            settings = self.settings
            try:
                out = pipeline.process(f.image)
            except VbgError as exc:  # e.g. a background that cannot be read: keep the old one
                self._report(exc.line())
                continue
            except Exception as exc:
                log.exception("processing failed")
                self._finish(f"processing failed: {exc}", True)
                return
            assert out.frame is not None
            with self._sink_lock:
                for sink in list(self._sinks):
                    try:
                        sink.write(out)
                    except Exception as exc:  # a sink that fails is dropped, the session goes on
                        self._sinks.remove(sink)
                        self._report(exc.line() if isinstance(exc, VbgError) else f"output stopped: {exc}")
            latency = (time.perf_counter() - f.t_capture) * 1000.0
            if self.on_delivery is not None:
                self.on_delivery(Delivery(f, out, settings, latency))
            t_done = time.perf_counter()
            with self._stats_lock:
                cpu_now = time.process_time()
                if self._frames_total == 0:
                    self._t0, self._cpu0 = t_done, cpu_now
                self._frames_total += 1
                self._runs_total += int(out.model_ran)
                if len(self._t_delivered) >= 2 * self.HISTORY:  # trim the oldest half: memory stays flat
                    for a in (self._t_delivered, self._latency, self._cpu, self._ran):
                        del a[: self.HISTORY]
                self._t_delivered.append(t_done)
                self._latency.append(latency)
                self._cpu.append(cpu_now)
                self._ran.append(1 if out.model_ran else 0)
                self._stage_ms = out.timings
                n = self._frames_total
            if self.max_frames is not None and n >= self.max_frames:
                self._finish(f"{n} frames done", False)
                return
        self._finish("stopped", False)
