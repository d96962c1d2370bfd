"""Plots a clinician reads: what they show, checked in the SVG (matplotlib keeps each text
as a comment next to its glyphs)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from omix import pl
from omix.stats import SurvivalSpec


def test_kaplan_meier_has_time_unit_and_number_at_risk(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(40)]
    surv = pd.DataFrame({"time": rng.exponential(500, 40).round(), "event": rng.integers(0, 2, 40)},
                        index=ids)
    groups = pd.Series(np.where(np.arange(40) < 25, "K1", "K2"), index=ids)
    spec = SurvivalSpec(time="os", event="dead", time_unit="days")
    pl.survival_by_cluster(surv, groups, 0.03, tmp_path / "km", time_label=spec.axis_label)
    svg = (tmp_path / "km.svg").read_text()
    assert "<!-- time (days) -->" in svg
    assert "<!-- At risk -->" in svg
    # the at-risk table: each group's row starts with everyone at risk at time 0
    assert re.search(r"<!-- +K1 +25 -->", svg) and re.search(r"<!-- +K2 +15 -->", svg)
    assert "log-rank p = 0.03" in svg
    assert SurvivalSpec(time="t", event="e").axis_label == "time (unit not set: " \
                                                          "survival.time_unit)"
