"""Traffic plans: sticky hashed assignment, its share, its monotonic ramp, and the shadow mirror."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchday.rollout import Route, TrafficPlan, bucket

N = 20_000
KEYS = [f"customer-{i}" for i in range(N)]


def plan(
    candidate_share: float = 0.0, shadow_share: float = 0.0, salt: str = "rollout-1", with_candidate: bool = True
) -> TrafficPlan:
    primary = Route("fraud", "fraud", 1, "fraud:1", plan="canary", arm="baseline", rollout_id=1, step=0)
    candidate = Route("fraud", "fraud", 2, "fraud:2", plan="canary", arm="candidate", rollout_id=1, step=0)
    return TrafficPlan(
        "fraud",
        primary,
        candidate if with_candidate else None,
        candidate_share=candidate_share,
        shadow_share=shadow_share,
        salt=salt,
    )


def within_binomial(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


# -- bucket ----------------------------------------------------------------------------------------


def test_bucket_values_lie_in_the_unit_interval_and_spread_uniformly() -> None:
    values = bucket(KEYS, "salt")
    assert values.shape == (N,) and values.dtype == np.float64
    assert values.min() >= 0.0 and values.max() < 1.0
    counts = np.histogram(values, bins=10, range=(0, 1))[0]
    for count in counts:  # each decile holds a tenth of the keys
        assert within_binomial(int(count), N, 0.1)
    assert len(np.unique(values)) == N


def test_bucket_is_a_pure_function_of_key_and_salt() -> None:
    first = bucket(KEYS[:500], "rollout-7")
    assert np.array_equal(first, bucket(list(KEYS[:500]), "rollout-7"))
    # a key's position does not depend on its neighbours in the batch
    assert np.array_equal(bucket(KEYS[250:500], "rollout-7"), first[250:])
    assert bucket(["customer-3"], "rollout-7")[0] == first[3]
    assert not np.array_equal(first, bucket(KEYS[:500], "rollout-8"))


def test_bucket_keeps_salt_and_key_apart() -> None:
    """("a", "bc") and ("ab", "c") must not hash alike."""
    assert bucket(["bc"], "a")[0] != bucket(["c"], "ab")[0]


def test_bucket_of_nothing() -> None:
    assert bucket([], "salt").shape == (0,)


def test_bucket_handles_any_text() -> None:
    values = bucket(["", "ünïcødé", "a" * 10_000, "\x00"], "s")
    assert ((values >= 0) & (values < 1)).all() and len(set(values.tolist())) == 4


# -- assign ----------------------------------------------------------------------------------------


def test_assignment_is_sticky_across_calls_and_plan_instances() -> None:
    first = plan(0.25).assign(KEYS)
    assert np.array_equal(first, plan(0.25).assign(KEYS))  # another process builds its own plan
    assert np.array_equal(first, plan(0.25).assign(KEYS))
    shuffled = np.random.default_rng(0).permutation(N)
    assert np.array_equal(plan(0.25).assign([KEYS[i] for i in shuffled]), first[shuffled])
    assert first.dtype == bool and first.shape == (N,)


@pytest.mark.parametrize("share", [0.01, 0.1, 0.25, 0.5, 0.9])
def test_candidate_share_holds_within_binomial_tolerance(share: float) -> None:
    assert within_binomial(int(plan(share).assign(KEYS).sum()), N, share)


def test_ramp_only_adds_keys_to_the_candidate() -> None:
    at = {share: plan(share).assign(KEYS) for share in (0.1, 0.25, 0.5, 1.0)}
    assert (at[0.1] <= at[0.25]).all()  # on the candidate at 10%: still on it at 25% ...
    assert (at[0.25] <= at[0.5]).all()  # ... and at 50%
    assert at[1.0].all()
    assert at[0.1].sum() < at[0.25].sum() < at[0.5].sum()


def test_different_salts_split_independently() -> None:
    a = plan(0.5, salt="rollout-1").assign(KEYS)
    b = plan(0.5, salt="rollout-2").assign(KEYS)
    both = int((a & b).sum())
    assert within_binomial(both, N, 0.25)  # independent halves overlap on a quarter
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("share", [0.0, -0.5])
def test_share_zero_sends_nobody_to_the_candidate(share: float) -> None:
    assert not plan(share).assign(KEYS).any()


@pytest.mark.parametrize("share", [1.0, 1.5])
def test_share_one_sends_everybody(share: float) -> None:
    assert plan(share).assign(KEYS).all()


def test_no_candidate_means_everybody_on_the_primary() -> None:
    p = plan(0.5, shadow_share=1.0, with_candidate=False)
    assert not p.assign(KEYS).any() and not p.mirror(KEYS).any()
    assert p.routes == (p.primary,)


def test_assign_of_no_rows() -> None:
    assert plan(0.5).assign([]).shape == (0,)
    assert plan(1.0).assign([]).shape == (0,)


# -- mirror ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.1, 0.3, 0.75])
def test_mirror_share_and_stickiness(share: float) -> None:
    mirrored = plan(shadow_share=share).mirror(KEYS)
    assert within_binomial(int(mirrored.sum()), N, share)
    assert np.array_equal(mirrored, plan(shadow_share=share).mirror(KEYS))


def test_mirror_edges() -> None:
    assert not plan(shadow_share=0.0).mirror(KEYS).any()
    assert plan(shadow_share=1.0).mirror(KEYS).all()
    assert not plan(candidate_share=1.0).mirror(KEYS).any()  # answering is not mirroring


def test_mirror_and_assign_use_independent_hashes() -> None:
    p = plan(candidate_share=0.5, shadow_share=0.5)
    assert within_binomial(int((p.assign(KEYS) & p.mirror(KEYS)).sum()), N, 0.25)


# -- routes ----------------------------------------------------------------------------------------


def test_served_versions() -> None:
    canary = plan(0.1)
    assert canary.served(1) is canary.primary and canary.served("2") is canary.candidate
    assert canary.served(3) is None
    shadow = plan(0.0, shadow_share=1.0)
    assert shadow.served(2) is None  # a shadow never answers
    assert shadow.served("1") is shadow.primary


def test_route_log_fields() -> None:
    p = plan(0.1)
    assert p.candidate is not None and p.candidate.ref == "fraud:2"
    assert p.candidate.as_log() == {
        "plan": "canary",
        "arm": "candidate",
        "model_ref": "fraud:2",
        "rollout": 1,
        "step": 0,
    }
    assert Route("d", "m", 3, "m@champion").as_log() == {"plan": "single", "arm": "primary", "model_ref": "m@champion"}


# -- properties ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.text(max_size=30), max_size=50),
    salt=st.text(max_size=20),
    low=st.floats(0, 1),
    high=st.floats(0, 1),
)
def test_raising_the_share_never_moves_a_key_back(keys: list[str], salt: str, low: float, high: float) -> None:
    low, high = sorted((low, high))
    before, after = plan(low, salt=salt).assign(keys), plan(high, salt=salt).assign(keys)
    assert (before <= after).all()
    positions = bucket(keys, salt)
    assert ((positions >= 0) & (positions < 1)).all()
    # a key is on the candidate exactly when its position is below the share (up to the edges)
    if 0 < low < 1:
        assert np.array_equal(before, positions < low)


@settings(max_examples=40, deadline=None)
@given(keys=st.lists(st.text(max_size=30), min_size=1, max_size=30), salt=st.text(max_size=20))
def test_each_key_is_routed_alone_as_in_a_batch(keys: list[str], salt: str) -> None:
    p = plan(0.37, salt=salt)
    batch = p.assign(keys)
    assert [bool(p.assign([k])[0]) for k in keys] == batch.tolist()
