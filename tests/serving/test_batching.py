"""Micro-batching must merge concurrent requests without mixing up, losing or oversizing anyone's rows."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from matchday.serving.batching import MicroBatcher, Scored, merge, split

SLOW_SECONDS = 0.02


def table(xs: list[float]) -> pa.Table:
    return pa.table({"x": pa.array(xs, type=pa.float64()), "tag": pa.array([f"r{x}" for x in xs], type=pa.string())})


def predict(t: pa.Table) -> Scored:
    """The unbatched model: a pure function of each row, so a row's answer never depends on its neighbours."""
    x = t.column("x").to_numpy()
    p = 1.0 / (1.0 + np.exp(-x))
    return Scored(x * 2, np.column_stack([1.0 - p, p]))


class Recorder:
    """A slow ``predict`` that remembers every call's rows, plus the sizes ``observe`` was told."""

    def __init__(self, fail_when: Callable[[np.ndarray], bool] | None = None) -> None:
        self.calls: list[list[float]] = []
        self.observed: list[int] = []
        self.fail_when = fail_when
        self._lock = threading.Lock()

    def predict(self, t: pa.Table) -> Scored:
        x = t.column("x").to_numpy()
        with self._lock:
            self.calls.append(x.tolist())
        time.sleep(SLOW_SECONDS)
        if self.fail_when is not None and self.fail_when(x):
            raise ValueError("model exploded")
        return predict(t)

    def observe(self, rows: int) -> None:
        self.observed.append(rows)


def assert_same(got: Scored, want: Scored) -> None:
    np.testing.assert_array_equal(got.predictions, want.predictions)
    assert (got.probabilities is None) == (want.probabilities is None)
    if want.probabilities is not None:
        np.testing.assert_array_equal(got.probabilities, want.probabilities)


# -- merge / split -------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", [[1], [3], [1, 1, 1], [2, 0, 3, 1], [0, 4], [5, 2, 7, 1, 1]])
@pytest.mark.parametrize("with_proba", [True, False])
def test_merge_then_split_gives_each_table_its_own_rows(sizes: list[int], with_proba: bool) -> None:
    start = 0
    tables = []
    for n in sizes:
        tables.append(table([float(v) for v in range(start, start + n)]))
        start += n
    merged, offsets = merge(tables)
    assert merged.num_rows == sum(sizes)
    assert offsets == np.cumsum([0, *sizes]).tolist()
    assert merged.column("x").to_pylist() == [v for t in tables for v in t.column("x").to_pylist()]

    whole = predict(merged)
    if not with_proba:
        whole = Scored(whole.predictions, None)
    parts = split(whole, offsets)
    assert len(parts) == len(tables)
    for part, t in zip(parts, tables):
        own = predict(t)
        assert_same(part, own if with_proba else Scored(own.predictions, None))


def test_merge_of_one_table_is_that_table() -> None:
    t = table([1.0, 2.0])
    merged, offsets = merge([t])
    assert merged is t and offsets == [0, 2]


# -- MicroBatcher --------------------------------------------------------------------------------
def run_requests(batcher: MicroBatcher, requests: list[list[float]]) -> list[Scored | BaseException]:
    async def main() -> list[Scored | BaseException]:
        try:
            return await asyncio.gather(*(batcher.score(table(xs)) for xs in requests), return_exceptions=True)
        finally:
            await batcher.close()

    return asyncio.run(main())


def test_concurrent_requests_share_model_calls_and_get_their_own_answers() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec.predict, max_batch_size=8, observe=rec.observe)
    requests = [[float(i)] for i in range(40)]
    results = run_requests(batcher, requests)

    for xs, got in zip(requests, results):
        assert isinstance(got, Scored)
        assert_same(got, predict(table(xs)))
    assert len(rec.calls) < len(requests)
    assert max(len(c) for c in rec.calls) > 1
    assert rec.observed == [len(c) for c in rec.calls]
    assert max(rec.observed) <= 8
    assert sorted(v for c in rec.calls for v in c) == sorted(v for xs in requests for v in xs)


def test_multi_row_requests_each_get_exactly_their_rows_back() -> None:
    rng = np.random.default_rng(0)
    requests = [rng.normal(size=int(n)).round(3).tolist() for n in rng.integers(1, 5, 30)]
    rec = Recorder()
    results = run_requests(MicroBatcher(rec.predict, max_batch_size=1000, observe=rec.observe), requests)

    for xs, got in zip(requests, results):
        assert isinstance(got, Scored)
        assert len(got.predictions) == len(xs)
        assert_same(got, predict(table(xs)))
    assert len(rec.calls) < len(requests)
    assert sum(rec.observed) == sum(len(xs) for xs in requests)


def test_single_row_requests_never_exceed_max_batch_size() -> None:
    for limit in (1, 3, 5):
        rec = Recorder()
        requests = [[float(i)] for i in range(17)]
        results = run_requests(MicroBatcher(rec.predict, max_batch_size=limit, observe=rec.observe), requests)
        assert all(isinstance(r, Scored) for r in results)
        assert max(len(c) for c in rec.calls) <= limit
        assert sum(len(c) for c in rec.calls) == len(requests)
        if limit > 1:
            assert len(rec.calls) < len(requests)


def test_merged_multi_row_requests_never_exceed_max_batch_size() -> None:
    rec = Recorder()
    requests = [[float(3 * i), float(3 * i + 1), float(3 * i + 2)] for i in range(10)]  # each fits alone
    results = run_requests(MicroBatcher(rec.predict, max_batch_size=4, observe=rec.observe), requests)
    assert all(isinstance(r, Scored) for r in results)
    assert max(rec.observed) <= 4, rec.observed


def test_a_request_larger_than_the_limit_is_still_scored_whole() -> None:
    rec = Recorder()
    xs = [float(i) for i in range(10)]
    (got,) = run_requests(MicroBatcher(rec.predict, max_batch_size=4, observe=rec.observe), [xs])
    assert isinstance(got, Scored)
    assert_same(got, predict(table(xs)))


def test_a_failing_batch_fails_only_the_request_whose_rows_the_model_fails_on() -> None:
    poison = -1.0
    rec = Recorder(fail_when=lambda x: bool((x == poison).any()))
    batcher = MicroBatcher(rec.predict, max_batch_size=4, observe=rec.observe)
    requests = [[float(i)] for i in range(12)]
    requests[5] = [poison]

    async def main() -> tuple[list[Scored | BaseException], list[Scored | BaseException]]:
        first = await asyncio.gather(*(batcher.score(table(xs)) for xs in requests), return_exceptions=True)
        later = await asyncio.gather(*(batcher.score(table(xs)) for xs in [[100.0], [101.0]]), return_exceptions=True)
        await batcher.close()
        return first, later

    first, later = asyncio.run(main())
    shared = {v for call in rec.calls if poison in call for v in call}
    assert len(shared) > 1  # the poison shared a batch, so the test says something
    assert [poison] in rec.calls  # ...and was then scored alone
    for xs, got in zip(requests, first):  # its batch-mates were scored again without it, and answered
        if xs == [poison]:
            assert isinstance(got, ValueError) and "exploded" in str(got)
        else:
            assert isinstance(got, Scored)
            assert_same(got, predict(table(xs)))
    for xs, got in zip([[100.0], [101.0]], later):  # the batching task survived the failure
        assert isinstance(got, Scored)
        assert_same(got, predict(table(xs)))


def test_a_model_answering_too_few_rows_fails_every_request() -> None:
    def short(t: pa.Table) -> Scored:  # one prediction short
        return predict(t.slice(0, t.num_rows - 1))

    results = run_requests(MicroBatcher(short), [[1.0], [2.0], [3.0]])
    assert all(isinstance(r, Exception) for r in results), results


def test_a_lone_request_with_max_wait_is_answered() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec.predict, max_wait=0.01, observe=rec.observe)
    (got,) = run_requests(batcher, [[4.0]])
    assert isinstance(got, Scored)
    assert_same(got, predict(table([4.0])))
    assert rec.observed == [1]


def test_a_cancelled_request_does_not_disturb_the_others() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec.predict, max_batch_size=2, observe=rec.observe)

    async def main() -> list[Scored | BaseException]:
        tasks = [asyncio.create_task(batcher.score(table([float(i)]))) for i in range(6)]
        await asyncio.sleep(0)
        tasks[3].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert isinstance(results[3], asyncio.CancelledError)
    for i, got in enumerate(results):
        if i != 3:
            assert isinstance(got, Scored)
            assert_same(got, predict(table([float(i)])))


def test_close_then_score_again_restarts_the_batcher() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec.predict)

    async def main() -> tuple[Scored, Scored]:
        a = await batcher.score(table([1.0]))
        await batcher.close()
        b = await batcher.score(table([2.0]))
        await batcher.close()
        return a, b

    a, b = asyncio.run(main())
    assert_same(a, predict(table([1.0])))
    assert_same(b, predict(table([2.0])))
