"""The reference profile registration writes fits `ReferenceProfile`, the type the store hands it out as and
monitoring reads it by; a profile stored before its later keys existed still fits and still reads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
from support.shapes import misfits

from matchday.monitoring import compare_to_profile
from matchday.registry import NumericProfile, ReferenceProfile
from matchday.registry.profile import profile_column, profile_table

# a version registered before tail quantiles, the labelled sample and the kept reference rows, as stored
STORED_BEFORE_THEM = {
    "version": 1,
    "rows": 4,
    "columns": {
        "amount": {
            "kind": "numeric",
            "count": 4,
            "missing": 0,
            "mean": 2.5,
            "std": 1.2909944487358056,
            "min": 1.0,
            "max": 4.0,
            "quantiles": np.linspace(1.0, 4.0, 1001).tolist(),
            "histogram": {"cuts": [2.0, 3.0], "counts": [1, 1, 2]},
            "values": [1.0, 2.0, 3.0, 4.0],
            "value_counts": [1, 1, 1, 1],
        },
        "shop": {
            "kind": "categorical",
            "count": 3,
            "missing": 1,
            "categories": {"a": 2, "b": 1},
            "other_count": 0,
            "distinct": 2,
        },
    },
    "prediction": {
        "kind": "categorical",
        "count": 4,
        "missing": 0,
        "categories": {"0": 3, "1": 1},
        "other_count": 0,
        "distinct": 2,
    },
}


def test_a_registered_profile_fits_its_type_and_is_json(registry, mixed_frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    registry.register("rule", "support.flavor_callables:score", reference=mixed_frame, target="label")
    profile = registry.get_profile("rule:1")
    assert misfits(profile, ReferenceProfile) == []
    assert {"prediction", "target", "labelled_sample", "reference_data"} <= profile.keys()
    assert json.loads(json.dumps(profile)) == profile


def test_every_form_of_a_column_fits() -> None:
    many = np.random.default_rng(3).normal(size=3000)  # more than 1000 distinct values: no exact counts
    table = pa.table(
        {
            "many": many,
            "few": np.arange(3000) % 7,
            "none": np.full(3000, np.nan),  # no finite value: its counts only
            "flag": np.arange(3000) % 2 == 0,
            "text": [None if i % 10 == 0 else f"c{i % 1500}" for i in range(3000)],  # past 1000 categories
        }
    )
    profile = profile_table(table)
    assert misfits(profile, ReferenceProfile) == []
    columns = profile["columns"]
    assert "values" not in columns["many"] and "values" in columns["few"]
    assert set(columns["none"]) == {"kind", "count", "missing"}
    assert columns["text"]["kind"] == "categorical" and columns["text"]["other_count"] > 0
    assert misfits(profile_column(np.array([1.0, 2.0])), NumericProfile) == []


def test_a_profile_stored_before_its_later_keys_fits_and_reads() -> None:
    assert misfits(STORED_BEFORE_THEM, ReferenceProfile) == []
    report = compare_to_profile(
        STORED_BEFORE_THEM, pa.table({"amount": [1.0, 2.0, 3.0, 4.0], "shop": ["a", "a", "b", None]})
    )
    assert set(report.columns) == {"amount", "shop"} and not report.dataset_drift


def test_the_check_catches_a_profile_of_another_shape() -> None:
    wrong = json.loads(json.dumps(STORED_BEFORE_THEM))
    wrong["columns"]["amount"]["kind"] = "number"
    del wrong["rows"]
    found = misfits(wrong, ReferenceProfile)
    assert "$: no 'rows'" in found and any(line.startswith("$.columns['amount']") for line in found)
