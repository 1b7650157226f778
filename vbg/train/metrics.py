"""Metrics on numpy masks (no torch): IoU, boundary F-score, MAE.

``pred`` is a probability map in [0, 1] (or bool), ``gt`` a bool mask, at
the same size. IoU and boundary F threshold ``pred`` at 0.5.
"""

from __future__ import annotations

import cv2
import numpy as np


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    p = np.asarray(pred) >= 0.5 if pred.dtype != bool else pred
    g = np.asarray(gt, bool)
    union = np.logical_or(p, g).sum()
    if union == 0:
        return 1.0  # both empty: a perfect answer
    return float(np.logical_and(p, g).sum() / union)


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.abs(np.asarray(pred, np.float32) - np.asarray(gt, np.float32)).mean())


def _edges(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0


def boundary_f(pred: np.ndarray, gt: np.ndarray, tol: float | None = None) -> float:
    """Boundary F-score (Perazzi et al. 2016): precision/recall of edge
    pixels matched within ``tol`` pixels (default 0.75 % of the diagonal)."""
    p = np.asarray(pred) >= 0.5 if pred.dtype != bool else pred
    g = np.asarray(gt, bool)
    h, w = g.shape
    if tol is None:
        tol = max(1.0, 0.0075 * float(np.hypot(h, w)))
    pe, ge = _edges(p), _edges(g)
    if not pe.any() and not ge.any():
        return 1.0
    if not pe.any() or not ge.any():
        return 0.0
    r = int(np.ceil(tol))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    ge_d = cv2.dilate(ge.astype(np.uint8), disk) > 0
    pe_d = cv2.dilate(pe.astype(np.uint8), disk) > 0
    precision = (pe & ge_d).sum() / pe.sum()
    recall = (ge & pe_d).sum() / ge.sum()
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))
