"""The soak run, short: marked ``soak`` and left out of the default run (``pytest -m soak`` runs it;
``benchmarks/soak_live.py`` is the 30-minute version whose figures the README gives)."""

from __future__ import annotations

import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.soak
def test_live_soak_survives_a_vanishing_camera_with_flat_memory() -> None:
    from soak_live import soak

    r = soak(minutes=1.5, every=5.0, gap=8.0, model=None)
    assert r["reconnects"] == 1 and "resumed" in r["outage"]
    assert r["fps_median"] > 20
    assert r["rss_last_quarter_mb"] < r["rss_first_quarter_mb"] * 1.15 + 20  # no growth beyond noise
    assert any("retrying until it is back" in m for _, m in r["messages"])
