"""The drift engine: every statistic against scipy (property-tested), edge cases, profile bounds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from hypothesis.extra.numpy import arrays
from scipy import stats
from scipy.spatial import distance

from matchday.monitoring.drift import (
    ColumnTest,
    DriftError,
    TextFeatures,
    compare_tables,
    compare_to_profile,
    image_features,
    render_html,
)
from matchday.monitoring.drift import statistics as st
from matchday.registry.profile import profile_table

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# small integers make ties common; the float range keeps sums exact enough for 1e-6 comparisons
values = arrays(
    np.float64,
    hs.integers(1, 60),
    elements=hs.one_of(hs.integers(-5, 5).map(float), hs.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)),
)


@FAST
@given(values, values)
def test_ks_matches_scipy(a: np.ndarray, b: np.ndarray) -> None:
    ours = st.ks_2samp_sorted(np.sort(a), np.sort(b))
    theirs = stats.ks_2samp(a, b)
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-6)


@FAST
@given(values, values)
def test_ks_statistic_by_merge_matches_scipy(a: np.ndarray, b: np.ndarray) -> None:
    assert st.ks_statistic_sorted(np.sort(a), np.sort(b)) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_ks_large_samples_match_scipy_asymptotic() -> None:
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.01, 0.05):
        a, b = rng.normal(size=20_000), rng.normal(shift, size=15_000)
        ours = st.ks_2samp_sorted(np.sort(a), np.sort(b))
        theirs = stats.ks_2samp(a, b, method="asymp")
        assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
        assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-6)


@FAST
@given(values, values)
def test_wasserstein_matches_scipy(a: np.ndarray, b: np.ndarray) -> None:
    assert st.wasserstein_sorted(np.sort(a), np.sort(b)) == pytest.approx(
        stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-9
    )
    expected = stats.wasserstein_distance(a, b) / max(float(np.std(a)), 0.001)
    assert st.wasserstein_normed(np.sort(a), np.sort(b)) == pytest.approx(expected, rel=1e-9, abs=1e-9)


shares = arrays(np.float64, hs.integers(1, 12), elements=hs.floats(0, 100, allow_nan=False))


@FAST
@given(hs.data())
def test_jensen_shannon_matches_scipy(data: hs.DataObject) -> None:
    p = data.draw(shares)
    q = data.draw(arrays(np.float64, len(p), elements=hs.floats(0, 100, allow_nan=False)))
    if p.sum() == 0 or q.sum() == 0:
        return
    expected = distance.jensenshannon(p, q)
    if np.isnan(expected):  # scipy takes the root of a divergence rounded below zero: proportional inputs, 0
        assert np.allclose(p / p.sum(), q / q.sum())
        expected = 0.0
    assert st.js_distance(p, q) == pytest.approx(expected, abs=1e-6)
    assert 0 <= st.js_distance(p, q) <= np.sqrt(np.log(2)) + 1e-12


@FAST
@given(hs.data())
def test_chi_square_matches_scipy(data: hs.DataObject) -> None:
    ref = data.draw(arrays(np.int64, hs.integers(2, 10), elements=hs.integers(1, 500)))
    cur = data.draw(arrays(np.int64, len(ref), elements=hs.integers(0, 500)))
    if cur.sum() == 0:
        return
    ours = st.chi_square(ref, cur)
    theirs = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-9, abs=1e-9)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-6)
    gof = st.chi_square_goodness_of_fit(ref, cur)
    expected = stats.chisquare(cur, ref * cur.sum() / ref.sum())
    assert gof.statistic == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert gof.p_value == pytest.approx(expected.pvalue, abs=1e-6)


def test_chi_square_edge_cases() -> None:
    assert st.chi_square_goodness_of_fit(np.array([10, 0]), np.array([5, 5])).p_value == 0.0  # unseen: certain
    assert st.chi_square(np.array([10, 0]), np.array([0, 10])).p_value < 1e-4
    assert st.chi_square(np.array([10]), np.array([4])).p_value == 1.0  # one category: nothing to test


@FAST
@given(hs.integers(1, 500), hs.integers(0, 500), hs.integers(1, 500), hs.integers(0, 500))
def test_z_test_matches_the_formula(n1: int, k1: int, n2: int, k2: int) -> None:
    k1, k2 = min(k1, n1), min(k2, n2)
    result = st.z_test_proportions(k1, n1, k2, n2)
    pooled = (k1 + k2) / (n1 + n2)
    if pooled in (0, 1):
        assert result.p_value == 1.0
        return
    z = (k1 / n1 - k2 / n2) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert result.p_value == pytest.approx(2 * (1 - stats.norm.cdf(abs(z))), abs=1e-9)


@FAST
@given(shares)
def test_psi_is_zero_for_identical_and_positive_otherwise(p: np.ndarray) -> None:
    if p.sum() == 0:
        return
    share = st.fill_zeroes(p / p.sum())
    assert st.psi(share, share) == pytest.approx(0.0, abs=1e-12)
    other = st.fill_zeroes(np.roll(p, 1) / p.sum())
    assert st.psi(share, other) >= -1e-12
    manual = float(np.sum((share - other) * np.log(share / other)))
    assert st.psi(share, other) == pytest.approx(manual, rel=1e-12, abs=1e-12)


@FAST
@given(values)
def test_histograms_of_sorted_values_match_numpy(a: np.ndarray) -> None:
    edges = st.sturges_edges(float(a.min()), float(a.max()), len(a))
    if a.min() != a.max():
        np.testing.assert_allclose(edges, np.histogram_bin_edges(a, bins="sturges"))
    assert st.histogram_sorted(np.sort(a), edges).tolist() == np.histogram(a, edges)[0].tolist()


# -- the engine ---------------------------------------------------------------------------------
def _tables(rows: int, seed: int = 0, shift: float = 0.0, new_category: bool = False) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)

    def one(s: float, cats: list[str]) -> pa.Table:
        return pa.table(
            {
                "x": rng.normal(s, 1, rows),
                "y": rng.normal(0, 1, rows),
                "k": rng.integers(0, 4, rows),
                "c": rng.choice(cats, rows),
            }
        )

    return one(0.0, ["a", "b", "c"]), one(shift, ["a", "b", "c", "d"] if new_category else ["a", "b", "c"])


@pytest.mark.parametrize(
    "rows,expected_tests",
    [
        (500, {"x": "ks", "k": "chisquare", "c": "chisquare"}),
        (5000, {"x": "wasserstein", "k": "jensenshannon", "c": "jensenshannon"}),
    ],
)
def test_automatic_test_choice_by_type_and_size(rows: int, expected_tests: dict[str, str]) -> None:
    ref, cur = _tables(rows)
    report = compare_tables(ref, cur)
    assert {name: report.columns[name].test for name in expected_tests} == expected_tests
    assert compare_tables(ref, ref).drifted_columns == []


def test_p_value_tests_keep_their_false_positive_rate() -> None:
    """Same distribution, many seeds: KS and chi-square flag about 5% of the time, as p < 0.05 should."""
    flags = [compare_tables(*_tables(400, seed=seed)).drifted_columns for seed in range(60)]
    rate = sum(len(f) for f in flags) / (60 * 4)
    assert rate < 0.12, rate
    gof = {"k": ColumnTest("chisquare_gof"), "c": ColumnTest("chisquare_gof")}
    ours = sum("k" in f for f in flags)
    theirs = sum("k" in compare_tables(*_tables(400, seed=seed), tests=gof).drifted_columns for seed in range(60))
    assert theirs >= 2 * max(ours, 1), (ours, theirs)  # the goodness-of-fit version ignores the reference's noise


def test_shifted_columns_are_flagged_and_only_those() -> None:
    report = compare_tables(*_tables(5000, shift=0.5, new_category=True))
    assert set(report.drifted_columns) == {"x", "c"}
    assert report.columns["c"].unseen_share == pytest.approx(0.25, abs=0.03)
    assert report.drift_share == 0.5 and report.dataset_drift


def test_overrides_choose_test_and_threshold() -> None:
    ref, cur = _tables(5000, shift=0.05)
    report = compare_tables(
        ref, cur, tests={"x": ColumnTest("ks", 0.05), "y": ColumnTest("psi", 0.2), "c": ColumnTest("unseen", 0.01)}
    )
    assert report.columns["x"].test == "ks" and report.columns["x"].p_value is not None
    assert report.columns["y"].test == "psi" and report.columns["y"].threshold == 0.2
    assert report.columns["c"].test == "unseen" and report.columns["c"].statistic == 0.0
    with pytest.raises(DriftError, match="does not apply to categorical"):
        compare_tables(ref, cur, tests={"c": ColumnTest("wasserstein")})


def test_edge_cases() -> None:
    constant = pa.table({"v": [1.0] * 50, "s": ["a"] * 50})
    report = compare_tables(constant, constant)
    assert not report.dataset_drift
    tiny_ref = pa.table({"v": [1.0, 2.0], "s": ["a", "b"]})
    tiny_cur = pa.table({"v": [5.0], "s": ["z"]})
    tiny = compare_tables(tiny_ref, tiny_cur)
    assert tiny.columns["s"].unseen_share == 1.0
    empty = pa.table({"v": pa.array([], pa.float64()), "s": pa.array([], pa.string())})
    with pytest.raises(DriftError, match="no rows"):
        compare_tables(tiny_ref, empty)
    missing = pa.table({"v": pa.array([None, None], pa.float64()), "s": ["a", "b"]})
    report = compare_tables(tiny_ref, missing)
    assert report.columns["v"].missing_share == 1.0 and report.columns["v"].drifted
    with pytest.raises(DriftError, match="no non-missing value in the reference"):
        compare_tables(missing, tiny_ref)
    with pytest.raises(DriftError, match="same columns") as err:
        compare_tables(tiny_ref, pa.table({"v": [1.0], "other": ["x"]}))
    assert "s: not in the current data" in err.value.details


def test_profile_based_drift_is_within_its_documented_bounds() -> None:
    """Against the stored profile, KS moves by at most 0.002 and normed Wasserstein by at most 0.01."""
    rng = np.random.default_rng(11)
    for shift in (0.0, 0.1, 0.5):
        ref = pa.table(
            {
                "x": rng.lognormal(0, 1, 200_000),
                "k": rng.integers(0, 7, 200_000),
                "c": rng.choice(["a", "b", "c"], 200_000),
            }
        )
        cur = pa.table(
            {
                "x": rng.lognormal(shift, 1, 50_000),
                "k": rng.integers(0, 7, 50_000),
                "c": rng.choice(["a", "b", "c"], 50_000),
            }
        )
        profile = profile_table(ref)
        exact = compare_tables(ref, cur, tests={"x": ColumnTest("ks"), "k": ColumnTest("ks")})
        approx = compare_to_profile(profile, cur, tests={"x": ColumnTest("ks"), "k": ColumnTest("ks")})
        assert abs(exact.columns["x"].statistic - approx.columns["x"].statistic) <= 0.002
        assert exact.columns["k"].statistic == pytest.approx(
            approx.columns["k"].statistic, abs=1e-12
        )  # exact counts kept
        w_exact = compare_tables(ref, cur).columns["x"].statistic
        w_approx = compare_to_profile(profile, cur).columns["x"].statistic
        assert abs(w_exact - w_approx) <= 0.01
        assert exact.columns["c"].statistic == pytest.approx(approx.columns["c"].statistic, abs=1e-12)
        assert exact.drifted_columns == approx.drifted_columns


def test_boolean_columns_match_their_profile() -> None:
    rng = np.random.default_rng(2)
    ref = pa.table({"flag": rng.random(5000) < 0.7})
    cur = pa.table({"flag": rng.random(3000) < 0.7})
    assert compare_to_profile(profile_table(ref), cur).drifted_columns == []
    assert compare_to_profile(profile_table(ref), pa.table({"flag": rng.random(3000) < 0.3})).drifted_columns == [
        "flag"
    ]


def test_domain_classifier_sees_what_no_single_column_shows() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=4000)
    noise = rng.normal(scale=0.3, size=4000)
    ref = pa.table({"x": x[:2000], "y": x[:2000] + noise[:2000]})
    cur = pa.table({"x": x[2000:], "y": -x[2000:] + noise[2000:]})  # same marginals, flipped correlation
    report = compare_tables(ref, cur, multivariate=True)
    assert report.drifted_columns == []
    assert report.multivariate is not None and report.multivariate["roc_auc"] > 0.9 and report.dataset_drift
    same = compare_tables(*_tables(2000), multivariate=True)
    assert same.multivariate is not None and not same.multivariate["drifted"]


def test_dim_images_are_caught_on_brightness() -> None:
    from sklearn.datasets import load_digits

    images = load_digits().images
    bright, dim = images[:800], images[800:] * 0.6
    ref = pa.table(image_features(bright))
    report = compare_tables(ref, pa.table(image_features(dim)), columns=["brightness", "contrast"])
    assert report.columns["brightness"].drifted
    assert not compare_tables(ref, pa.table(image_features(images[800:])), columns=["brightness"]).dataset_drift


def test_text_features_catch_new_vocabulary() -> None:
    text = TextFeatures().fit(["card declined at the shop"] * 10)
    same = text.transform(["card declined"] * 600)
    new = text.transform(["crypto wallet drained overnight"] * 600)
    report = compare_tables(pa.table(text.transform(["card declined at the shop"] * 600)), pa.table(new))
    assert report.columns["oov_share"].drifted and same["oov_share"].max() == 0.0


def test_html_report_is_self_contained() -> None:
    report = compare_tables(*_tables(3000, shift=0.4, new_category=True), multivariate=True)
    page = render_html(report)
    assert "<svg" in page and "Dataset drift detected" in page and "domain classifier" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert "<script" not in page


def test_drift_command(tmp_path: Path) -> None:
    ref, cur = _tables(3000, shift=0.5, new_category=True)
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pq.write_table(ref, tmp_path / "ref.parquet")
    pacsv.write_csv(cur, tmp_path / "cur.csv")
    pq.write_table(ref.slice(0, 1500), tmp_path / "same.parquet")
    matchday = str(Path(sys.executable).parent / "matchday")

    def process(*args: str) -> subprocess.CompletedProcess[str]:
        """The installed console script, as CI runs it."""
        return subprocess.run(
            [matchday, "drift", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={"COLUMNS": "160", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"]},
        )  # see conftest

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        """The same command through `matchday.cli.main` in this process (as tests/cli/test_cli.py runs most
        commands): the same exit code, stdout and stderr, without a process start-up (~1 s) each."""
        from support.cli_in_process import run_in_process

        return run_in_process(["drift", *args], {"COLUMNS": "160"})

    drifted = process(
        str(tmp_path / "ref.parquet"),
        str(tmp_path / "cur.csv"),
        "--html",
        str(tmp_path / "r.html"),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert drifted.returncode == 3, drifted.stderr
    assert "dataset drift" in drifted.stdout
    result = json.loads((tmp_path / "r.json").read_text())
    assert set(result["drifted_columns"]) == {"x", "c"}
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")
    calm = run(str(tmp_path / "ref.parquet"), str(tmp_path / "same.parquet"))
    assert calm.returncode == 0 and "no dataset drift" in calm.stdout
    pq.write_table(cur, tmp_path / "cur.parquet")
    by_column = run(str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet"), "--json", str(tmp_path / "p.json"))
    assert by_column.returncode == 3  # two Parquet files are read one column at a time: the same result
    assert json.loads((tmp_path / "p.json").read_text())["drifted_columns"] == result["drifted_columns"]
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    for args, message in [
        ((str(tmp_path / "ref.parquet"), str(tmp_path / "missing.csv")), "no such file"),
        ((str(tmp_path / "ref.parquet"), str(tmp_path / "empty.csv")), "could not be read"),
        ((str(tmp_path / "ref.parquet"), str(tmp_path / "other.csv")), "same columns"),
        ((str(tmp_path / "ref.parquet"), str(tmp_path / "cur.csv"), "--test", "x=nope"), "does not apply"),
        ((str(tmp_path / "ref.parquet"), str(tmp_path / "broken.parquet")), "as Parquet"),
        ((str(tmp_path / "ref.parquet"), str(tmp_path / "cur.csv"), "--test", "x=ks:high"), "must be a number"),
    ]:
        failed = (process if message == "as Parquet" else run)(*args)  # one of them a real process too
        assert (
            failed.returncode == 1 and failed.stderr.startswith("error:") and message in " ".join(failed.stderr.split())
        ), failed.stderr
        assert "Traceback" not in failed.stderr


# -- mergeable window summaries -----------------------------------------------------------------
def test_merged_summaries_equal_the_summary_of_all_rows() -> None:
    from matchday.monitoring.drift import merge_summaries, summarize_table
    from matchday.monitoring.drift.summary import column_mean, column_std

    rng = np.random.default_rng(4)
    table = pa.table(
        {
            "x": np.where(rng.random(30_000) < 0.01, np.nan, rng.normal(0, 5, 30_000)),
            "z": np.zeros(30_000),
            "c": rng.choice(["a", "b", "c"], 30_000),
        }
    )
    hours = [summarize_table(table.slice(i, 5_000)) for i in range(0, 30_000, 5_000)]
    day = hours[0]
    for hour in hours[1:]:
        day = merge_summaries(day, hour)
    whole = summarize_table(table)
    assert day["rows"] == whole["rows"] and day["columns"]["c"] == whole["columns"]["c"]
    for key in ("count", "missing", "min", "max", "sketch"):
        assert day["columns"]["x"][key] == whole["columns"]["x"][key], key
    assert column_mean(day["columns"]["x"]) == pytest.approx(column_mean(whole["columns"]["x"]), rel=1e-9, abs=1e-9)
    assert column_std(day["columns"]["x"]) == pytest.approx(column_std(whole["columns"]["x"]), rel=1e-9)
    assert day["columns"]["z"]["sketch"]["zero"] == 30_000
    json.dumps(day)  # storable as is


@FAST
@given(arrays(np.float64, hs.integers(1, 200), elements=hs.floats(-1e6, 1e6, allow_nan=False)))
def test_sketch_quantiles_are_within_their_relative_accuracy(a: np.ndarray) -> None:
    from matchday.monitoring.drift.summary import ALPHA, sample_of_summary, summarize_numeric

    sample = sample_of_summary(summarize_numeric(a))
    assert isinstance(sample, type(sample)) and sample.n == len(a)
    exact = np.sort(a)
    # each pseudo-sample value stands for the same rank of the data, within the relative accuracy
    ranks = ((np.arange(len(sample.values)) + 0.5) / len(sample.values) * len(a)).astype(int).clip(0, len(a) - 1)
    tolerance = ALPHA * np.abs(exact[ranks]) * 2.01 + 1e-9
    assert np.all(np.abs(sample.values - exact[ranks]) <= tolerance)


def test_summary_based_drift_is_within_its_documented_bounds() -> None:
    """A window summary instead of the rows: KS within 0.003, normed Wasserstein within 0.01."""
    from matchday.monitoring.drift import compare_summary_to_profile, summarize_table

    rng = np.random.default_rng(12)
    ref = pa.table(
        {"x": rng.lognormal(0, 1, 200_000), "y": rng.normal(0, 1, 200_000), "c": rng.choice(["a", "b"], 200_000)}
    )
    profile = profile_table(ref)
    for shift in (0.0, 0.05, 0.3):
        cur = pa.table(
            {
                "x": rng.lognormal(shift, 1, 100_000),
                "y": rng.normal(shift, 1, 100_000),
                "c": rng.choice(["a", "b"], 100_000),
            }
        )
        ks = {"x": ColumnTest("ks"), "y": ColumnTest("ks")}
        rows, window = (
            compare_to_profile(profile, cur, tests=ks),
            compare_summary_to_profile(profile, summarize_table(cur), tests=ks),
        )
        for name in ("x", "y"):
            assert abs(rows.columns[name].statistic - window.columns[name].statistic) <= 0.003
        rows, window = compare_to_profile(profile, cur), compare_summary_to_profile(profile, summarize_table(cur))
        for name in ("x", "y"):
            assert abs(rows.columns[name].statistic - window.columns[name].statistic) <= 0.01
        assert rows.columns["c"].statistic == pytest.approx(window.columns["c"].statistic, abs=1e-12)
        assert rows.drifted_columns == window.drifted_columns


def test_a_window_ks_p_value_uses_the_windows_real_size_not_its_pseudo_sample() -> None:
    """A window's sample is rebuilt from its sketch (fewer points than rows): its KS p-value is the
    asymptotic one at the real sizes, close to what the rows themselves give."""
    from matchday.monitoring.drift import compare_summary_to_profile, summarize_table

    rng = np.random.default_rng(5)
    ref = pa.table({"x": rng.normal(0, 1, 500)})  # small: the profile keeps every value (an exact sample)
    cur = pa.table({"x": rng.normal(0.06, 1, 8000)})
    ks = {"x": ColumnTest("ks")}
    window = compare_summary_to_profile(profile_table(ref), summarize_table(cur), tests=ks).columns["x"]
    assert window.current_rows == 8000
    expected = stats.kstwo.sf(window.statistic, round(500 * 8000 / 8500))
    assert window.p_value == pytest.approx(expected, rel=1e-9)
    rows = stats.ks_2samp(ref.column("x").to_numpy(), cur.column("x").to_numpy())
    assert window.p_value == pytest.approx(rows.pvalue, abs=0.02)


def test_prediction_drift_against_the_registered_predictions(registry_free_profile: dict) -> None:  # type: ignore[type-arg]
    from matchday.monitoring.drift import prediction_drift

    profile = registry_free_profile
    assert not prediction_drift(profile, np.r_[np.zeros(900), np.ones(100)]).drifted
    assert prediction_drift(profile, np.r_[np.zeros(500), np.ones(500)]).drifted
    with pytest.raises(DriftError, match="no predictions"):
        prediction_drift({"columns": {}}, [1, 0])


@pytest.fixture
def registry_free_profile() -> dict:  # type: ignore[type-arg]
    from matchday.registry.profile import profile_column

    return {
        "columns": {},
        "rows": 2000,
        "prediction": profile_column(np.r_[np.zeros(1800), np.ones(200)].astype(np.int64)),
    }


def test_a_lazily_merged_summary_is_stored_as_the_summary_of_all_its_rows() -> None:
    """Sketch buckets merged as arrays (the monitoring tick) are written as the listed buckets."""
    from matchday.monitoring.drift import merge_summaries, summarize_table
    from matchday.monitoring.drift.summary import sketch_keys, summarize_sketched
    from matchday.store.database import _json

    rng = np.random.default_rng(9)
    values = np.r_[rng.lognormal(0, 2, 3000), -rng.lognormal(0, 1, 500), np.zeros(20), [np.nan] * 7]
    halves = [values[:1700], values[1700:]]
    lazy = [summarize_sketched(sketch_keys(h), lazy=True) for h in halves]
    merged = merge_summaries({"rows": 1, "columns": {"x": lazy[0]}}, {"rows": 1, "columns": {"x": lazy[1]}})
    whole = summarize_table(pa.table({"x": values}))["columns"]["x"]
    stored = json.loads(_json(merged["columns"]["x"]))
    assert stored["sketch"] == whole["sketch"]  # the same buckets, listed
    assert merged["columns"]["x"]["sketch"]["positive"] == whole["sketch"]["positive"]  # and equal in memory


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sketch_buckets_counted_from_codes_match_a_count_per_side(seed: int) -> None:
    """Both sides' buckets come from one count of each value's code (bucket and sign); the oracle
    counts each side's keys on its own with np.unique, for every row and for a subset of rows."""
    from matchday.monitoring.drift.summary import ALPHA, sketch_keys, summarize_sketched

    rng = np.random.default_rng(seed)
    values = np.r_[
        rng.lognormal(0, 3, 2000),
        -rng.lognormal(0, 1, 700),
        np.zeros(30),
        [1e-13, -1e-14, 1e300, -1e300, 5e-324],
        [np.nan] * 5,
        [np.inf, -np.inf],
    ]
    rng.shuffle(values)
    rows = rng.random(values.size) < 0.4
    log_gamma = np.log((1 + ALPHA) / (1 - ALPHA))

    def side(v: np.ndarray) -> list[list[int]]:
        keys, counts = np.unique(np.ceil(np.log(np.abs(v)) / log_gamma).astype(np.int64), return_counts=True)
        return np.column_stack([keys, counts]).tolist() if keys.size else []

    sketched = sketch_keys(values)
    for mask in (None, rows):
        v = values if mask is None else values[mask]
        counted = np.isfinite(v) & (np.abs(v) >= 1e-12)
        sketch = summarize_sketched(sketched, rows=mask)["sketch"]
        assert sketch["positive"] == side(v[counted & (v > 0)])
        assert sketch["negative"] == side(v[counted & (v < 0)])
        assert sketch["zero"] == int(np.count_nonzero(np.isfinite(v) & (np.abs(v) < 1e-12)))


def test_predict_probas_answer_is_read_with_the_models_classes(registry_free_profile: dict) -> None:  # type: ignore[type-arg]
    from matchday.monitoring.drift import prediction_drift

    proba = np.column_stack([np.r_[np.full(900, 0.8), np.full(100, 0.3)], np.r_[np.full(900, 0.2), np.full(100, 0.7)]])
    as_labels = prediction_drift(registry_free_profile, np.r_[np.zeros(900), np.ones(100)])
    from_proba = prediction_drift(registry_free_profile, proba, classes=[0.0, 1.0])
    assert (from_proba.statistic, from_proba.drifted) == (as_labels.statistic, as_labels.drifted)
    with pytest.raises(DriftError, match=r"shape \(1000, 2\) look like predict_proba's.*classes="):
        prediction_drift(registry_free_profile, proba)
    with pytest.raises(DriftError, match="one value per row"):
        prediction_drift(registry_free_profile, np.zeros((2, 2, 2)))


def test_pandas_frames_and_dicts_of_columns_are_compared_like_arrow_tables() -> None:
    import pandas as pd

    from matchday.monitoring.drift import compare_tables, compare_to_profile

    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 800), "c": rng.choice(["a", "b"], 800)})
    cur = pd.DataFrame({"x": rng.normal(1, 1, 800), "c": rng.choice(["a", "b"], 800)})
    arrow = compare_tables(pa.Table.from_pandas(ref), pa.Table.from_pandas(cur))
    frames = compare_tables(ref, cur)
    assert frames.columns["x"].statistic == arrow.columns["x"].statistic and frames.columns["x"].drifted
    assert compare_to_profile(profile_table(pa.Table.from_pandas(ref)), cur).columns["x"].drifted
    assert compare_tables({"x": ref["x"].to_numpy()}, {"x": cur["x"].to_numpy()}).columns["x"].drifted
    with pytest.raises(DriftError, match="the current data is a list; give a pyarrow Table, a pandas"):
        compare_tables(ref, [1, 2, 3])
