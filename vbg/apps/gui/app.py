"""``vbg gui``: the tuning window.

A live preview (result, original, mask, side by side) beside the controls a
person tunes while watching themselves: edge sliders, a background picker,
model, backend and camera pickers, and the virtual camera switch. Every
change becomes a new ``Settings`` handed to ``LiveLoop.update``: sliders
apply from the next frame and nothing restarts; a new camera or model is
opened on the processing thread. Frames reach the UI through ``FrameBridge``
(a queued signal, newest frame only), so the UI thread never waits on
capture or inference. Settings are saved to the user's config directory and
restored at start.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QColor, QIcon, QImage, QKeySequence, QPalette, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QCheckBox,
    QColorDialog,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ...assets import bundled_backgrounds_dir
from ...config import load_config
from ...errors import VbgError
from ...io.capture import list_cameras
from ...io.files import IMAGE_EXTS, VIDEO_EXTS, decode_image, read_bytes
from ...loop import LiveLoop
from ...models import list_models
from ...paths import config_path
from ...settings import BACKENDS, VIEWS, Settings
from ...sinks.vcam import CameraFactory, VirtualCamSink
from ...stages.backgrounds import Background, BackgroundSpec, cover_fit, open_background
from .bridge import FrameBridge, checkerboard
from .stop_signals import closing_on_signals

log = logging.getLogger(__name__)

VIEW_LABELS = {"result": "Result", "original": "Original", "mask": "Mask", "side-by-side": "Side by side"}
THUMB = QSize(112, 63)
ROLE_BG = Qt.ItemDataRole.UserRole

SHORTCUTS = [
    ("1–4", "views"),
    ("V", "virtual camera"),
    ("M", "mirror"),
    ("B", "blur"),
    ("Ctrl+O", "open background"),
    ("Ctrl+Q", "quit"),
]


def load_settings(path: Path) -> tuple[Settings, str | None]:
    """Saved settings, or defaults with a note when the file is unusable."""
    if not path.is_file():
        return Settings(), None
    try:
        return load_config(path), None
    except VbgError as exc:
        return Settings(), f"ignored saved settings: {exc.line()}"


# settings whose change (re)starts a session that has ended on an error
RESTART_KEYS = {"camera", "width", "height", "fps", "model", "backend", "bg"}
RESOLUTIONS = [(640, 480), (1280, 720), (1920, 1080)]
FRAME_RATES = [15.0, 24.0, 30.0, 60.0]


def camera_choices() -> dict[str, str]:
    """Cameras to offer, value -> label ("Integrated Camera (/dev/video0)"); virtual cameras left out."""
    return {c.value: (f"{c.name} ({c.value})" if c.value.startswith("/dev/") else c.name)
            for c in list_cameras() if not c.loopback}


def _bgr_pixmap(img: np.ndarray, size: QSize = THUMB) -> QPixmap:
    img = np.ascontiguousarray(cover_fit(img, size.width(), size.height()))
    h, w = img.shape[:2]
    return QPixmap.fromImage(QImage(img.data, w, h, img.strides[0], QImage.Format.Format_BGR888).copy())


def _icon_color(bgr: tuple[int, int, int]) -> QIcon:
    img = np.empty((THUMB.height(), THUMB.width(), 3), np.uint8)
    img[:] = bgr
    return QIcon(_bgr_pixmap(img))


def _icon_blur() -> QIcon:
    img = np.zeros((THUMB.height(), THUMB.width(), 3), np.uint8)
    for i, c in enumerate([(180, 120, 60), (60, 160, 220), (90, 200, 120), (200, 200, 200)]):
        cv2.circle(img, (14 + i * 28, 20 + (i % 2) * 22), 16, c, -1)
    return QIcon(_bgr_pixmap(cv2.GaussianBlur(img, (0, 0), 6)))


class LabeledSlider(QWidget):
    """An integer slider shown as a float value: value = position * scale."""

    def __init__(self, lo: float, hi: float, step: float, fmt: str, on_change: Callable[[float], object]) -> None:
        super().__init__()
        self.step, self.fmt = step, fmt
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(lo / step), round(hi / step))
        self.label = QLabel()
        self.label.setMinimumWidth(48)
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.label)
        self._on_change = on_change
        self.slider.valueChanged.connect(self._changed)

    def value(self) -> float:
        return round(self.slider.value() * self.step, 6)

    def set_value(self, v: float) -> None:
        """Move without reporting a change (restoring settings)."""
        self.slider.blockSignals(True)
        self.slider.setValue(round(v / self.step))
        self.slider.blockSignals(False)
        self.label.setText(self.fmt.format(self.value()))

    def _changed(self, _: int) -> None:
        self.label.setText(self.fmt.format(self.value()))
        self._on_change(self.value())


class RefreshingComboBox(QComboBox):
    """A combo box that refills itself (``refill``) just before its list opens."""

    def __init__(self, refill: Callable[[], None]) -> None:
        super().__init__()
        self._refill = refill

    def showPopup(self) -> None:  # noqa: N802 (Qt name)
        self._refill()
        super().showPopup()


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, *, config: Path | None = None,
                 backgrounds_dir: Path | None = None, camera_factory: CameraFactory | None = None,
                 autostart: bool = True, config_unusable: bool = False) -> None:
        super().__init__()
        self.config = config or config_path()
        note = None
        if settings is None:
            settings, note = load_settings(self.config)
        self.settings = settings
        self._changed = False  # by the user, in this window: only then does closing write the config
        self._config_unusable = config_unusable or note is not None  # kept aside, not overwritten
        self.backgrounds_dir = backgrounds_dir or bundled_backgrounds_dir()
        self._camera_factory = camera_factory
        self.vcam: VirtualCamSink | None = None
        self.loop: LiveLoop | None = None
        self.frames_shown = 0
        self.shown: tuple[np.ndarray, Any] | None = None  # (image on screen, its Delivery)
        self.bridge = FrameBridge(settings.view)
        q = Qt.ConnectionType.QueuedConnection  # emitted on the processing thread
        self.bridge.frame_ready.connect(self._show_frame, q)
        self.bridge.ended.connect(self._session_ended, q)
        self.bridge.error.connect(self._session_error, q)
        self.bridge.kept.connect(self._model_kept, q)
        self._save_timer = QTimer(self)  # debounced: a slider drag saves once
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(500)
        self._save_timer.timeout.connect(self.save_settings)
        self._readout_timer = QTimer(self)
        self._readout_timer.setInterval(500)
        self._readout_timer.timeout.connect(self._update_readout)

        self.setWindowTitle("vbg — virtual background")
        self.setStyleSheet("QPushButton:checked { background: palette(highlight); color: palette(highlighted-text); }")
        self._build()
        self._restore_controls()
        self.resize(1180, 700)
        if note:
            self.statusBar().showMessage(note, 10000)
        if autostart:
            self.start_session()

    # -- layout ----------------------------------------------------------
    def _build(self) -> None:
        central = QWidget()
        root = QHBoxLayout(central)
        root.setContentsMargins(10, 10, 10, 6)
        root.setSpacing(10)

        left = QVBoxLayout()
        self.preview = QLabel("starting…")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(320, 180)
        self.preview.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.preview.setStyleSheet("QLabel { background: #111; color: #ddd; border-radius: 6px; }")
        self.preview.setWordWrap(True)
        left.addWidget(self.preview, 1)
        views = QHBoxLayout()
        self.view_buttons = QButtonGroup(self)
        self.view_buttons.setExclusive(True)
        for i, view in enumerate(VIEWS):
            b = QPushButton(VIEW_LABELS[view])
            b.setCheckable(True)
            b.setToolTip(f"{VIEW_LABELS[view]} view ({i + 1})")
            self.view_buttons.addButton(b, i)
            views.addWidget(b)
        self.view_buttons.idClicked.connect(lambda i: self.set_view(VIEWS[i]))
        views.addStretch(1)
        self.readout = QLabel("")
        self.readout.setStyleSheet("color: palette(mid);")
        views.addWidget(self.readout)
        left.addLayout(views)
        root.addLayout(left, 1)

        panel = QWidget()
        panel.setFixedWidth(330)
        side = QVBoxLayout(panel)
        side.setContentsMargins(0, 0, 6, 0)

        # background
        bg_box = QGroupBox("Background")
        bg_lay = QVBoxLayout(bg_box)
        self.bg_list = QListWidget()
        self.bg_list.setViewMode(QListWidget.ViewMode.IconMode)
        self.bg_list.setIconSize(THUMB)
        self.bg_list.setGridSize(QSize(THUMB.width() + 12, THUMB.height() + 26))
        self.bg_list.setMovement(QListWidget.Movement.Static)
        self.bg_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.bg_list.setFixedHeight(2 * (THUMB.height() + 26) + 8)
        self.bg_list.itemClicked.connect(self._bg_item_clicked)
        bg_lay.addWidget(self.bg_list)
        self._fill_backgrounds()
        self.blur = LabeledSlider(1, 100, 1, "{:.0f}", self._blur_changed)
        self.blur.setToolTip("Blur strength (shown while the blur background is chosen)")
        self.blur_row = QWidget()
        blur_row = QFormLayout(self.blur_row)
        blur_row.setContentsMargins(0, 0, 0, 0)
        blur_row.addRow("Blur", self.blur)
        bg_lay.addWidget(self.blur_row)
        self.light_wrap = LabeledSlider(0, 1, 0.05, "{:.2f}", lambda v: self.apply(light_wrap=v))
        self.light_wrap.setToolTip("Light wrap: the background's light spilling over the person's edges")
        self.frame_auto = QCheckBox("Auto-frame: keep me centred")
        self.frame_auto.setToolTip("Crop and zoom smoothly so the person stays centred (--frame auto)")
        self.frame_auto.toggled.connect(lambda on: self.apply(frame="auto" if on else "off"))
        extra = QFormLayout()
        extra.addRow("Light wrap", self.light_wrap)
        extra.addRow(self.frame_auto)
        bg_lay.addLayout(extra)
        side.addWidget(bg_box)

        # edges
        edge_box = QGroupBox("Edges")
        form = QFormLayout(edge_box)
        self.threshold = LabeledSlider(0, 1, 0.01, "{:.2f}", lambda v: self.apply(threshold=v))
        self.threshold.setToolTip("Mask threshold: higher keeps less of the picture")
        self.slope = LabeledSlider(1, 100, 1, "{:.0f}", lambda v: self.apply(slope=v))
        self.slope.setToolTip("Slope (--slope): edge hardness, 1 = soft ramp, 100 = hard cut")
        self.feather = LabeledSlider(0, 50, 0.5, "{:.1f} px", lambda v: self.apply(feather=v))
        self.smoothing = LabeledSlider(0, 1, 0.01, "{:.2f}", lambda v: self.apply(smoothing=v))
        self.smoothing.setToolTip("Temporal smoothing: steadier edges, slower to follow motion")
        form.addRow("Threshold", self.threshold)
        form.addRow("Slope", self.slope)
        form.addRow("Feather", self.feather)
        form.addRow("Smoothing", self.smoothing)
        side.addWidget(edge_box)

        # source and model
        src_box = QGroupBox("Camera and model")
        form2 = QFormLayout(src_box)
        self.camera = RefreshingComboBox(self._fill_cameras)
        self.camera.activated.connect(self._camera_picked)
        self.mirror = QCheckBox("Mirror")
        self.mirror.toggled.connect(lambda on: self.apply(mirror=on))
        cam_row = QHBoxLayout()
        cam_row.addWidget(self.camera, 1)
        cam_row.addWidget(self.mirror)
        form2.addRow("Camera", cam_row)
        self.resolution = QComboBox()
        self.resolution.activated.connect(self._resolution_picked)
        self.fps = QComboBox()
        self.fps.activated.connect(lambda i: self.apply(fps=self.fps.itemData(i)))
        res_row = QHBoxLayout()
        res_row.addWidget(self.resolution, 1)
        res_row.addWidget(self.fps)
        form2.addRow("Size", res_row)
        self.model = QComboBox()
        self.model.activated.connect(self._model_picked)
        form2.addRow("Model", self.model)
        self.backend = QComboBox()
        self.backend.addItems(list(BACKENDS))
        self.backend.activated.connect(lambda i: self.apply(backend=BACKENDS[i]))
        form2.addRow("Backend", self.backend)
        side.addWidget(src_box)

        # virtual camera
        self.vcam_button = QPushButton("Start virtual camera")
        self.vcam_button.setCheckable(True)
        self.vcam_button.setToolTip("Send the result to the 'vbg' camera for Zoom, Meet or Teams (V)")
        self.vcam_button.toggled.connect(self.set_virtual_camera)
        self.vcam_button.setMinimumHeight(34)
        side.addWidget(self.vcam_button)
        keys = QLabel(" · ".join(f"<b>{k}</b>&nbsp;{what}" for k, what in SHORTCUTS))
        keys.setWordWrap(True)
        keys.setStyleSheet("color: palette(mid); font-size: 11px;")
        side.addWidget(keys)
        side.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setFixedWidth(348)
        root.addWidget(scroll)
        self.setCentralWidget(central)
        self._add_shortcuts()

    def _add_shortcuts(self) -> None:
        def action(keys: str | QKeySequence.StandardKey, fn: Callable[[], Any]) -> None:
            a = QAction(self)
            a.setShortcut(QKeySequence(keys))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.triggered.connect(lambda *_: fn())  # drop triggered's 'checked' argument
            self.addAction(a)

        for i, view in enumerate(VIEWS):
            action(str(i + 1), functools.partial(self.set_view, view))
        action("V", self.vcam_button.toggle)
        action("M", self.mirror.toggle)
        action("B", lambda: self.apply(bg=f"blur:{self.blur.value():g}"))
        action("Ctrl+O", self.pick_background_file)
        action("Ctrl+Q", self.close)

    def _fill_backgrounds(self) -> None:
        self.bg_list.clear()
        d = self.backgrounds_dir
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS) if d.is_dir() else []
        for p in files:
            img = decode_image(read_bytes(p, "background"), cv2.IMREAD_REDUCED_COLOR_4)  # thumbnails: 1/4 size
            if img is None:
                log.warning("skipping unreadable background %s", p)
                continue
            item = QListWidgetItem(QIcon(_bgr_pixmap(img)), p.stem.replace("_", " "))
            item.setData(ROLE_BG, str(p.resolve()))  # resolved: matches the settings' path however written
            item.setToolTip(str(p))
            self.bg_list.addItem(item)
        specials = [("Blur", "blur", _icon_blur()), ("Colour…", "color", _icon_color(self._color())),
                    ("None", "none", QIcon(_bgr_pixmap(checkerboard(THUMB.height(), THUMB.width(), 9)))),
                    ("File…", "file", QIcon.fromTheme("document-open", _icon_color((70, 70, 70))))]
        for text, key, icon in specials:
            item = QListWidgetItem(icon, text)
            item.setData(ROLE_BG, key)
            self.bg_list.addItem(item)

    def _color(self) -> tuple[int, int, int]:
        bg = self.settings.background
        return bg.color_bgr if bg.kind == "color" else BackgroundSpec("color").color_bgr

    def _restore_controls(self) -> None:
        s = self.settings
        self.threshold.set_value(s.threshold)
        self.slope.set_value(s.slope)
        self.feather.set_value(s.feather)
        self.smoothing.set_value(s.smoothing)
        self.light_wrap.set_value(s.light_wrap)
        self.frame_auto.blockSignals(True)
        self.frame_auto.setChecked(s.frame == "auto")
        self.frame_auto.blockSignals(False)
        bg = s.background
        self.blur.set_value(bg.blur if bg.kind == "blur" else 25)
        self.blur_row.setVisible(bg.kind == "blur")
        self.mirror.blockSignals(True)
        self.mirror.setChecked(s.mirror)
        self.mirror.blockSignals(False)
        self.view_buttons.button(VIEWS.index(s.view)).setChecked(True)
        self.backend.setCurrentIndex(BACKENDS.index(s.backend))
        self._fill_cameras()
        self.resolution.clear()
        for w, h in dict.fromkeys(RESOLUTIONS + [(s.width, s.height)]):
            self.resolution.addItem(f"{w}x{h}", f"{w}x{h}")
        self.resolution.setCurrentIndex(self.resolution.findData(f"{s.width}x{s.height}"))
        self.fps.clear()
        for f in dict.fromkeys(FRAME_RATES + [s.fps]):
            self.fps.addItem(f"{f:g} fps", f)
        self.fps.setCurrentIndex(self.fps.findData(s.fps))
        names = ["default"] + [e.spec.name for e in list_models()]
        self._fill_combo(self.model, names, s.model, "Model spec…", lambda v: Path(v).name)
        self._select_bg_item()

    def _fill_cameras(self) -> None:
        """The camera picker: the cameras there are now (it refills each time it opens, so a webcam plugged
        in meanwhile shows up), the current source, and a file picker."""
        cams = camera_choices()
        current = self.settings.camera
        if current.isdigit() and f"/dev/video{current}" in cams:  # "0" is /dev/video0: one entry, not two
            current = f"/dev/video{current}"
        self._fill_combo(self.camera, list(cams), current, "Video file…",
                         lambda v: cams.get(v) or (f"Camera {v}" if v.isdigit() else v if v.startswith("/dev/")
                                                   else Path(v).name))

    @staticmethod
    def _fill_combo(combo: QComboBox, values: list[str], current: str, browse: str,
                    label: Callable[[str], str]) -> None:
        combo.clear()
        for v in dict.fromkeys(values + [current]):
            combo.addItem(label(v), v)
        combo.addItem(browse, None)
        combo.setCurrentIndex(combo.findData(current))

    def _select_bg_item(self) -> None:
        bg = self.settings.background
        key = str(bg.path.resolve()) if bg.path is not None else bg.kind
        for i in range(self.bg_list.count()):
            item = self.bg_list.item(i)
            if item.data(ROLE_BG) == key:
                self.bg_list.setCurrentItem(item)
                return
        self.bg_list.setCurrentRow(-1)  # a file from elsewhere
        self.bg_list.clearSelection()

    # -- settings ----------------------------------------------------------
    def apply(self, background: Background | None = None, **changes: Any) -> bool:
        """Validate and apply a settings change; from the next frame, nothing restarts.

        ``background``: the new ``bg`` already opened (by ``set_background``).
        """
        try:
            new = self.settings.replace(**changes)
        except VbgError as exc:
            self.statusBar().showMessage(exc.line(), 8000)
            if background is not None:
                background.close()
            return False
        if new == self.settings:
            if background is not None:
                background.close()
            if (self.loop is None or not self.loop.running) and changes.keys() & RESTART_KEYS:
                self.start_session()  # the same camera picked again after it failed: it may be there now
            return True
        old, self.settings = self.settings, new
        self._changed = True
        if new.bg != old.bg:
            self.blur_row.setVisible(new.background.kind == "blur")
            if new.background.kind == "blur":
                self.blur.set_value(new.background.blur)
            self._select_bg_item()
        if self.loop is not None and self.loop.running:
            self.loop.update(new, background)
        elif background is not None:
            background.close()
        elif new.differs(old, RESTART_KEYS):
            self.start_session()  # the last session ended on an error: try again with the fix
        self._save_timer.start()
        return True

    def save_settings(self) -> None:
        try:
            if self._config_unusable and self.config.is_file():  # the user's file, unreadable to us: keep it
                bad = self.config.with_name(self.config.name + ".bad")
                os.replace(self.config, bad)
                self._config_unusable = False
                log.warning("the unusable settings file was kept as %s", bad)
                self.statusBar().showMessage(f"the unusable settings file was kept as {bad}", 10000)
            self.settings.save(self.config)
        except OSError as exc:
            self.statusBar().showMessage(f"cannot save settings to {self.config}: {exc.strerror}", 8000)
        except UnicodeError:  # a path the file system gave as undecodable bytes
            self.statusBar().showMessage(f"cannot save settings to {self.config}: a path in them is not "
                                         "valid text", 8000)

    # -- session -------------------------------------------------------------
    def start_session(self) -> None:
        """(Re)start capture + processing; opening happens on the processing thread."""
        self.stop_session()
        self.preview.setText(f"opening {self.settings.camera}…")
        self.loop = LiveLoop(self.settings, loop_file=True, on_delivery=self.bridge.deliver,
                             on_end=self.bridge.on_end, on_error=self.bridge.on_error, on_kept=self.bridge.on_kept)
        if self.vcam is not None:
            self.loop.add_sink(self.vcam)
        self.loop.start(background=True)
        self._readout_timer.start()

    def stop_session(self) -> None:
        loop, self.loop = self.loop, None
        if loop is not None:
            loop.on_end = None  # a deliberate stop is not news
            loop.stop()

    def _show_frame(self) -> None:
        item = self.bridge.take()
        if item is None:
            return
        qimg, img, d = item
        pm = QPixmap.fromImage(qimg)
        size = self.preview.size()
        if pm.width() > size.width() or pm.height() > size.height() or pm.width() < size.width() // 2:
            pm = pm.scaled(size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        self.preview.setPixmap(pm)
        self.shown = (img, d)
        self.frames_shown += 1

    def _session_ended(self, reason: str, lost: bool) -> None:
        self.preview.setPixmap(QPixmap())
        self.preview.setText(("⚠ " if lost else "") + reason)
        if lost:
            self.statusBar().showMessage(reason, 15000)

    def _model_kept(self, kept: Settings) -> None:
        """The picked model or backend failed to load: the pickers, and the saved settings, go back to the
        ones that run (otherwise every later change would carry, and retry, the failed pick)."""
        s = self.settings.replace(model=kept.model, backend=kept.backend)
        if s == self.settings:
            return
        self.settings = s
        self.backend.setCurrentIndex(BACKENDS.index(s.backend))
        self.model.setCurrentIndex(self.model.findData(s.model))
        self._save_timer.start()

    def _session_error(self, message: str) -> None:
        self.statusBar().showMessage(message, 10000)

    def _update_readout(self) -> None:
        loop = self.loop
        if loop is None or not loop.running:
            self.readout.setText("")
            return
        st = loop.stats(window=2.0)
        backend = loop.backend_name
        model = f" · model on {100 * st.model_runs / st.frames:.0f} % of frames" if st.frames else ""
        self.readout.setText(f"{st.fps:.1f} fps · latency {st.latency_ms_p50:.0f} ms (p95 {st.latency_ms_p95:.0f})"
                             + model + (f" · {backend}" if backend else ""))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        s = self.preview.size()
        self.bridge.target_size = (s.width(), s.height())

    # -- controls --------------------------------------------------------------
    def _blur_changed(self, strength: float) -> None:
        """The blur slider only sets the strength: it shows only while blur is the background."""
        if self.settings.background.kind == "blur":
            self.apply(bg=f"blur:{strength:g}")

    def _resolution_picked(self, index: int) -> None:
        w, h = (int(v) for v in str(self.resolution.itemData(index)).split("x"))
        self.apply(width=w, height=h)

    def set_view(self, view: str) -> None:
        self.bridge.view = view
        self.view_buttons.button(VIEWS.index(view)).setChecked(True)
        self.apply(view=view)

    def _bg_item_clicked(self, item: QListWidgetItem) -> None:
        key = item.data(ROLE_BG)
        if key == "file":
            self.pick_background_file()
        elif key == "color":
            c = QColorDialog.getColor(QColor(*reversed(self._color())), self, "Background colour")
            if c.isValid():
                self.pick_color(c)
        elif key == "blur":
            self.apply(bg=f"blur:{self.blur.value():g}")
        else:
            self.set_background(key)

    def pick_color(self, c: QColor) -> None:
        self.apply(bg=f"color:#{c.red():02x}{c.green():02x}{c.blue():02x}")
        for i in range(self.bg_list.count()):
            if self.bg_list.item(i).data(ROLE_BG) == "color":
                self.bg_list.item(i).setIcon(_icon_color((c.blue(), c.green(), c.red())))

    def pick_background_file(self) -> None:
        exts = " ".join(f"*{e}" for e in (*IMAGE_EXTS, *sorted(VIDEO_EXTS)))
        path, _ = QFileDialog.getOpenFileName(self, "Background image or video", str(Path.home()),
                                              f"Images and videos ({exts});;All files (*)")
        if path:
            self.set_background(path)

    def set_background(self, text: str) -> bool:
        """An image/video path or a bg spec; opened here (once), so a bad file never reaches the loop."""
        try:
            spec = BackgroundSpec.parse(text)
            opened = open_background(spec) if spec.path is not None else None
        except VbgError as exc:
            self.statusBar().showMessage(exc.line(), 10000)
            self._select_bg_item()
            return False
        if spec.path is not None:
            text = str(spec.path.resolve())  # saved absolute: the config works from any folder
        return self.apply(bg=text, background=opened)

    def _camera_picked(self, index: int) -> None:
        value = self.camera.itemData(index)
        if value is None:
            exts = " ".join(f"*{e}" for e in sorted(VIDEO_EXTS))
            value, _ = QFileDialog.getOpenFileName(self, "Video file as camera", str(Path.home()),
                                                   f"Videos ({exts});;All files (*)")
            if not value:
                self.camera.setCurrentIndex(self.camera.findData(self.settings.camera))
                return
            value = str(Path(value).resolve())  # saved absolute: the config works from any folder
            self.camera.insertItem(self.camera.count() - 1, Path(value).name, value)
            self.camera.setCurrentIndex(self.camera.findData(value))
        elif value == f"/dev/video{self.settings.camera}":
            value = self.settings.camera  # the same device under its other name: no reopen
        self.apply(camera=value)

    def _model_picked(self, index: int) -> None:
        value = self.model.itemData(index)
        if value is None:
            value, _ = QFileDialog.getOpenFileName(self, "Model spec", str(Path.home()), "Model spec (*.json)")
            if not value:
                self.model.setCurrentIndex(self.model.findData(self.settings.model))
                return
            value = str(Path(value).resolve())
            self.model.insertItem(self.model.count() - 1, Path(value).name, value)
            self.model.setCurrentIndex(self.model.findData(value))
        self.apply(model=value)

    def set_virtual_camera(self, on: bool) -> None:
        if on and self.vcam is None:
            loop = self.loop
            w, h = loop.frame_size if loop is not None else (self.settings.width, self.settings.height)
            fps = loop.source_fps if loop is not None else self.settings.fps
            try:
                self.vcam = VirtualCamSink(w, h, fps, camera_factory=self._camera_factory)
            except VbgError as exc:
                self.statusBar().showMessage(exc.line(), 20000)
                self.vcam_button.blockSignals(True)
                self.vcam_button.setChecked(False)
                self.vcam_button.blockSignals(False)
                return
            if loop is not None:
                loop.add_sink(self.vcam)
            self.statusBar().showMessage(f"virtual camera on: {self.vcam.device}", 5000)
        elif not on and self.vcam is not None:
            vcam, self.vcam = self.vcam, None
            if self.loop is not None:
                self.loop.remove_sink(vcam)
            vcam.close()
            self.statusBar().showMessage("virtual camera off", 3000)
        self.vcam_button.setText("Stop virtual camera" if self.vcam else "Start virtual camera")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt name)
        self._readout_timer.stop()
        self._save_timer.stop()
        if self._changed or not self.config.exists():  # a flag given for one run is not saved as a default
            self.save_settings()
        self.set_virtual_camera(False)
        self.stop_session()
        super().closeEvent(event)


def dark_palette(app: QApplication) -> None:
    app.setStyle("Fusion")
    p = QPalette()
    base, text, mid = QColor(37, 39, 43), QColor(225, 226, 228), QColor(140, 142, 148)
    for role, color in [(QPalette.ColorRole.Window, QColor(30, 31, 35)), (QPalette.ColorRole.WindowText, text),
                        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, QColor(45, 47, 52)),
                        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, QColor(48, 50, 56)),
                        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.Highlight, QColor(56, 132, 230)),
                        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
                        (QPalette.ColorRole.ToolTipBase, base), (QPalette.ColorRole.ToolTipText, text),
                        (QPalette.ColorRole.Mid, mid), (QPalette.ColorRole.PlaceholderText, mid)]:
        p.setColor(role, color)
    app.setPalette(p)


def open_window(settings: Settings, *, config: Path, note: str | None = None, screenshot: Path | None = None,
                config_unusable: bool = False) -> int:
    """Run the tuning window until it closes; Ctrl-C, SIGTERM and SIGHUP close it cleanly."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("vbg")
    dark_palette(app)  # type: ignore[arg-type]
    win = MainWindow(settings, config=config, config_unusable=config_unusable)
    if note:
        win.statusBar().showMessage(note, 10000)
    win.show()
    if screenshot:
        _screenshot_when_ready(win, screenshot)
    with closing_on_signals(win):
        return int(app.exec())


def _screenshot_when_ready(win: MainWindow, path: Path, frames: int = 20, timeout: float = 20.0) -> None:
    t0 = time.monotonic()

    def check() -> None:
        ended = win.loop is None or not win.loop.running
        if win.frames_shown >= frames or ended or time.monotonic() - t0 > timeout:
            win._update_readout()
            path.parent.mkdir(parents=True, exist_ok=True)
            win.grab().save(str(path))
            log.warning("saved %s", path)
            win.close()
        else:
            QTimer.singleShot(100, check)

    QTimer.singleShot(100, check)
