"""Loss and IoU curves as a PNG, drawn with OpenCV (no matplotlib needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

COLOURS = [(200, 80, 30), (30, 140, 230), (40, 170, 60), (160, 60, 200)]


def _panel(title: str, series: dict[str, list[tuple[float, float]]], w: int = 480, h: int = 320,
           xlabel: str = "epoch", marks: bool = False) -> np.ndarray:
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 52, 12, 28, 36
    cv2.putText(img, title, (left, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    pts = [p for s in series.values() for p in s if np.isfinite(p[1])]
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    if not pts:
        return img
    xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    x0, x1 = float(xs.min()), float(max(xs.max(), xs.min() + 1e-6))
    y0, y1 = float(ys.min()), float(ys.max())
    pad = (y1 - y0) * 0.05 or 0.05
    y0, y1 = y0 - pad, y1 + pad

    def to_px(x: float, y: float) -> tuple[int, int]:
        px = left + (x - x0) / (x1 - x0) * (w - left - right)
        py = h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)
        return int(round(px)), int(round(py))

    for i in range(5):  # y grid and labels
        y = y0 + (y1 - y0) * i / 4
        _, py = to_px(x0, y)
        cv2.line(img, (left, py), (w - right, py), (225, 225, 225), 1)
        cv2.putText(img, f"{y:.3g}", (4, py + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(img, f"{xlabel} {x0:g} .. {x1:g}", (left, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1,
                cv2.LINE_AA)
    for k, (name, s) in enumerate(series.items()):
        c = COLOURS[k % len(COLOURS)]
        p = [to_px(x, y) for x, y in s if np.isfinite(y)]
        if len(p) > 1:
            cv2.polylines(img, [np.array(p, np.int32)], False, c, 2, cv2.LINE_AA)
        if marks or len(p) == 1:
            for q in p:
                cv2.circle(img, q, 3, c, -1)
        cv2.putText(img, name, (w - right - 110, top + 16 + 16 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.45, c, 1,
                    cv2.LINE_AA)
    return img


def plot_curves(rows: list[dict[str, float]], path: Path) -> None:
    """rows: the CSV log (epoch, train_loss, val_loss, val_iou ...) -> PNG."""
    def series(key: str) -> list[tuple[float, float]]:
        return [(float(r["epoch"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]

    loss = _panel("loss", {"train": series("train_loss"), "val": series("val_loss")})
    metric = _panel("validation IoU", {"val IoU": series("val_iou")})
    img = np.hstack([loss, metric])
    tmp = path.with_suffix(".tmp.png")
    cv2.imwrite(str(tmp), img)
    tmp.replace(path)


def plot_points(title: str, series: dict[str, list[tuple[float, float]]], xlabel: str, path: Path) -> None:
    """One panel of (x, y) series with the points marked, e.g. accuracy against latency."""
    img = _panel(title, series, w=640, h=400, xlabel=xlabel, marks=True)
    tmp = path.with_suffix(".tmp.png")
    cv2.imwrite(str(tmp), img)
    tmp.replace(path)
