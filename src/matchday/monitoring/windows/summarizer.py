"""Windows over the prediction log, kept up to date incrementally.

Each tick reads the rows logged since its cursor once, summarises them per deployment version,
segment and 5-minute window, and adds that summary to the 5-minute, hour and day windows (and to the
open window by count); nothing is reread. Labels are different: they land late and may be corrected,
so the windows whose rows were labelled since the last tick get their performance recomputed from
their labelled rows (only those), and the hour and day above them re-merged from their 5-minute parts.

The cursor is the id of the log's batches (one per writer flush, read whole, as Arrow). On
PostgreSQL a lower id can commit after a higher one, so ids the cursor passed without seeing are
kept as gaps and looked for again for ``GAP_SECONDS``. (A state from before the columnar log kept a
row id; rows up to it are not summarised again.)

Beside the windows by count, each version keeps the **sliding window**: the latest ``count_window``
rows, as panes of ``slide_rows`` rows (a twentieth of the window by default) whose summaries merge into
it (panes, not a reread: each row is still summarised once). The tick returns it, measured, for the
monitors to judge (`matchday.monitoring.loop`); it is not stored as a window. Its pane at a
window-by-count boundary is that window's last one, so at each boundary it holds the same rows.

One series' trouble is its own (`matchday.monitoring.windows.failures`): a version whose rows cannot be
summarised, a window that cannot be merged or measured, a label that cannot be scored, is logged,
counted and passed over; the cursor moves on and every other series' windows are written. A stored
window whose summary cannot be merged at all starts again from the new rows (noted in its summary
as ``restarted``). The store's errors still fail the whole tick, which is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from matchday.monitoring.drift.concept import (
    DetectorError,
    detector_from_state,
    make_detector,
)
from matchday.monitoring.log import LogColumns, to_datetime
from matchday.monitoring.windows.failures import (
    FAILURES_KEY,
    Failures,
    SeriesFailure,
)
from matchday.monitoring.windows.metrics import window_metrics
from matchday.monitoring.windows.names import DEVICE, SOURCE, TIME_WIDTHS, count_width, segment_name
from matchday.monitoring.windows.read_ahead import read_ahead
from matchday.monitoring.windows.series import SeriesKey
from matchday.monitoring.windows.summarizer_state import (
    STATE_KEY,
    Detection,
    Detectors,
    Pane,
    SummarizerState,
    as_stored,
    panes_key,
    read_panes,
    read_state,
)
from matchday.monitoring.windows.summary import (
    VersionReference,
    WindowPerformance,
    WindowSummary,
    columns_of_batch,
    label_text,
    merge_performance,
    merge_summary,
    performance_of,
    settled_summary,
    stored_performance,
    stored_summary,
    summarize_columns,
)
from matchday.store import (
    LoggedRow,
    MetricWindow,
    MonitorStateStore,
    NotFound,
    PredictionLogStore,
    StoreError,
    WindowKey,
    WindowStore,
)

log = logging.getLogger("matchday.monitoring")
BASE = "5m"
ANSWER_ROLES = ("served", "failed_over")
GAP_SECONDS = 600.0  # how long an id the cursor skipped is looked for again
MAX_GAP_BATCHES = 10_000
LABEL_OVERLAP = timedelta(seconds=10)  # labels committed out of order within this are still found
COUNT_HISTORY = 500  # count windows remembered (by id range) for labels that arrive later
WIDE = ("1h", "1d")  # open windows whose drift is recomputed only when they have grown by DRIFT_REGROWTH
DRIFT_REGROWTH = 1.1
OTHER = "__other__"
MAX_DEVICES = 1000  # edge devices per deployment with windows of their own; the rest pool into __other__
SLIDING_MAX_ROWS = 100_000  # a count window larger than this is judged when complete, without a sliding window
SLIDING_ALPHA = 0.001  # the p-value tests' level in the sliding window, judged again at every step: at
# Evidently's 0.05, hundreds of looks at dozens of features find a third of them "drifted" by chance
DETECTOR_ERROR_MAX = 1e100  # errors fed to a detector are capped: its window sums their squares (ADWIN's
# variance), and a label of 1e200 would make that inf, stored as null, and the detector unloadable


Parsed = LogColumns | Exception  # a version's rows of a batch as columns, or why they could not be read


class _Pending(TypedDict):
    """A window's summaries of this tick's rows (merged once all are in) and the end its rows reach."""

    deltas: list[WindowSummary]
    end: datetime


@dataclass
class SummarizerConfig:
    count_window: int = 1000  # rows per window by count
    slide_rows: int | None = None  # the sliding window's step (its panes' rows); None: a twentieth of count_window
    segments: dict[str, list[str]] = field(default_factory=dict)  # deployment (or "*") -> features to slice by
    max_segment_values: int = 20  # distinct values per feature with a series of their own; the rest pool
    batch_rows: int = 50_000  # rows read per query
    max_rows_per_tick: int = 2_000_000
    concept_drift: dict[str, Any] = field(default_factory=lambda: {"detector": "adwin"})  # name and parameters
    images: dict[str, list[str]] = field(default_factory=dict)  # deployment (or "*") -> pixel inputs of an image
    texts: dict[str, list[str]] = field(default_factory=dict)  # deployment (or "*") -> free-text inputs


@dataclass
class TickResult:
    rows: int = 0
    labelled_windows: int = 0
    windows: list[MetricWindow] = field(default_factory=list)  # every window written this tick
    sliding: list[MetricWindow] = field(default_factory=list)  # the latest count_window rows of each version
    # that had rows this tick (width of the count window, start of its oldest pane, ``summary["step"]`` the
    # start of its newest; not stored)
    failures: list[SeriesFailure] = field(default_factory=list)  # series passed over this tick (also counted)


def floor_time(at: datetime, seconds: int) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


class Summarizer:
    def __init__(
        self,
        log_store: PredictionLogStore,
        windows: WindowStore,
        state: MonitorStateStore,
        reference: Callable[[str, int], VersionReference | None],
        config: SummarizerConfig | None = None,
    ) -> None:
        self.log_store = log_store
        self.windows = windows
        self.state = state
        self.reference_of = reference
        self.config = config or SummarizerConfig()
        self._references: dict[tuple[str, int], VersionReference | None] = {}
        self._full_panes: dict[SeriesKey, _TwoStacks] = {}  # a version's sliding window's full panes, merged

    def reference(self, model: str, version: int) -> VersionReference | None:
        key = (model, version)
        if key not in self._references:
            try:
                self._references[key] = self.reference_of(model, version)
            except NotFound as exc:  # a deleted version still has windows: summarised without a reference
                log.warning("no reference for %s:%s (%s); its windows have no drift", model, version, exc)
                self._references[key] = None
            # anything else (the database away) propagates: the tick fails and is retried, nothing cached
        return self._references[key]

    @property
    def sliding(self) -> bool:
        """Whether the loop keeps a sliding window of the latest ``count_window`` rows (not past SLIDING_MAX_ROWS)."""
        return self.config.count_window <= SLIDING_MAX_ROWS

    @property
    def slide_rows(self) -> int:
        """The sliding window's step: rows per pane (at most the window, at least one)."""
        n = self.config.count_window
        return min(n, max(1, self.config.slide_rows or n // 20))

    # -- one tick ----------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> TickResult:
        # one BLAS thread: the sums here are over thousands of values, where OpenBLAS' threads only
        # spin-wait for each other and for the server on the same cores (a busy 2-core tick took twice as long)
        with threadpool_limits(limits=1, user_api="blas"):
            return self._tick(now)

    def _tick(self, now: datetime | None) -> TickResult:
        now = now or datetime.now(UTC)
        state = read_state(self.state.get(STATE_KEY))
        result = TickResult()
        failures = Failures(lambda: self.state.get(FAILURES_KEY), now)
        pending: dict[WindowKey, _Pending] = {}
        panes: dict[SeriesKey, list[Pane]] = {}  # a version's sliding window's panes, as changed this tick
        # each batch summarised as it is read (memory stays bounded), the next read meanwhile; the reader
        # has set the cursors in ``state`` once the loop is through
        for batch, parts in read_ahead(self._parsed(read_ahead(self._read(state, now)))):
            result.rows += batch.num_rows
            for series, part, cols in parts:
                with failures.guard(series, "summarise", f"{part.num_rows} rows"):
                    self._summarise(series, cols, state, pending, panes, origin_rows(part))
        staged: dict[WindowKey, MetricWindow] = {w.key: w for w in self._write(pending, now, failures)}
        result.sliding = self._sliding(panes, now, failures)
        relabelled = self._relabel(state, now, staged, failures)
        result.labelled_windows = len(relabelled)
        staged.update({w.key: w for w in relabelled})
        result.windows = list(staged.values())
        result.failures = failures.new
        # one transaction for the windows, the panes and the cursor: a crash in between neither loses nor repeats rows
        self.windows.put_many(
            result.windows,
            state={
                STATE_KEY: as_stored(state),
                **failures.to_state(),
                **{panes_key(series): as_stored({"panes": kept}) for series, kept in panes.items()},
            },
        )
        return result

    def _parsed(
        self, batches: Iterator[pa.Table]
    ) -> Iterator[tuple[pa.Table, list[tuple[SeriesKey, pa.Table, Parsed]]]]:
        """Each batch split by version and parsed into columns (or the error that stopped it, raised
        where that version is summarised): run in the reading thread, as most of it is Arrow and NumPy
        work outside the GIL, beside the summaries of the batch before."""
        for batch in batches:
            parts: list[tuple[SeriesKey, pa.Table, Parsed]] = []
            for series, part in self._versions(batch):
                try:
                    parsed: Parsed = columns_of_batch(part, self.reference(series.model, series.version))
                except Exception as exc:
                    parsed = exc
                parts.append((series, part, parsed))
            yield batch, parts

    def _summarise(
        self,
        series: SeriesKey,
        parsed: Parsed,
        state: SummarizerState,
        pending: dict[WindowKey, _Pending],
        panes: dict[SeriesKey, list[Pane]],
        origins: dict[str, np.ndarray] | None = None,
    ) -> None:
        """One version's rows of a batch added to its windows, all or nothing: if any of it fails, neither
        ``pending`` nor the version's count windows in ``state`` hold a part of them. ``origins``: the rows
        of batch jobs and edge devices by origin segment (`origin_rows`)."""
        deployment, model, version = series
        if isinstance(parsed, Exception):
            raise parsed
        cols = parsed
        skey = series.to_text()
        counts = state["counts"].get(skey)
        before = [list(w) for w in counts] if counts is not None else None
        mine: dict[WindowKey, _Pending] = {}
        try:
            deltas = _Deltas(cols, self.reference(model, version), self._configured(self.config.texts, deployment))
            self._add_time_windows(deployment, model, version, deltas, state, mine, origins or {})
            self._add_count_windows(deployment, model, version, deltas, state, mine)
            # the panes summarise each row a second time: worth it to see a shift within a few hundred rows
            # of a window of a thousand; a window of a million rows is its own quick detector, and doubling
            # its summaries would cost the loop a second per million rows
            slid = self._slide(self._panes(series, panes), deltas) if self.sliding else None
        except BaseException:
            if before is None:
                state["counts"].pop(skey, None)
            else:
                state["counts"][skey] = before
            raise
        for key, item in mine.items():
            for delta in item["deltas"]:
                _add(pending, key, delta, item["end"])
        if slid is not None:
            panes[series] = slid

    def _panes(self, series: SeriesKey, panes: dict[SeriesKey, list[Pane]]) -> list[Pane]:
        """A version's panes as this tick left them, else as stored: [start iso, rows, summary], oldest first."""
        if series in panes:
            return panes[series]
        stored = read_panes(self.state.get(panes_key(series)))
        return [list(p) for p in stored.get("panes", [])]

    def _slide(self, panes: list[Pane], deltas: _Deltas) -> list[Pane]:
        """The panes with these rows added (a new list; ``panes`` is left as it was): the newest pane
        filled up to ``slide_rows``, then new ones; only the panes of the latest ``count_window`` rows
        are kept, and only their rows are summarised."""
        cols, step = deltas.cols, self.slide_rows
        keep = -(-self.config.count_window // step)
        out = [list(p) for p in panes]
        parts: list[tuple[int, np.ndarray]] = []  # (index in out, row positions) of each pane's new rows
        i = 0
        while i < len(cols):
            if not out or out[-1][1] >= step:
                start = to_datetime(int(cols.at[i]))
                if out and datetime.fromisoformat(out[-1][0]) >= start:
                    start = datetime.fromisoformat(out[-1][0]) + timedelta(microseconds=1)
                out.append([start.isoformat(), 0, None])
            take = np.arange(i, min(len(cols), i + step - out[-1][1]))
            out[-1][1] += int(take.size)
            parts.append((len(out) - 1, take))
            i += int(take.size)
        first = max(0, len(out) - keep)
        for index, take in parts:
            if index < first:
                continue  # pushed out of the window by later rows of the same batch: never summarised
            delta = settled_summary(deltas.of(take))
            old = out[index][2]
            out[index][2] = delta if old is None else merge_summary(old, delta)
        return out[first:]

    def _sliding(self, panes: dict[SeriesKey, list[Pane]], now: datetime, failures: Failures) -> list[MetricWindow]:
        """Each version's sliding window (the latest ``count_window`` rows), measured, for those with new rows.
        The p-value tests are held to ``SLIDING_ALPHA``: the same rows are tested again at every step."""
        out = []
        width = count_width(self.config.count_window)
        for series, kept in panes.items():
            if not kept:
                continue
            deployment, model, version = series
            with failures.guard(series, "sliding window", f"{width} at {kept[0][0]}"):
                full = self._full_panes.setdefault(series, _TwoStacks()).merged([(p[0], p[2]) for p in kept[:-1]])
                merged = kept[-1][2] if full is None else merge_summary(full, kept[-1][2])
                summary: WindowSummary = {**merged, "step": kept[-1][0]}  # the newest pane's start: which step this is
                key = (deployment, model, int(version), "", width, datetime.fromisoformat(kept[0][0]))
                last = summary.get("last_at")
                end = datetime.fromisoformat(last) if last else now
                out.append(self._window(key, end, summary, None, now, alpha=SLIDING_ALPHA))
        return out

    def _read(self, state: SummarizerState, now: datetime) -> Iterator[pa.Table]:
        """Whole batches of the log past the cursor (first any that filled an earlier gap), answer roles only."""
        if "batch_cursor" not in state:  # a state from before the columnar log: resume at the batch of its row
            state["batch_cursor"] = max((self.log_store.batch_of_row(int(state["cursor"])) or 1) - 1, 0)
            state["batch_gaps"] = []
        floor = int(state["cursor"])  # rows up to here were summarised by row id, before the columnar log
        read = 0
        row_gaps = [g for g in state["gaps"] if now.timestamp() - g[2] < GAP_SECONDS]
        if row_gaps:  # (only from before the columnar log: they expire)
            late = self.log_store.batch_in_ranges([(lo, hi) for lo, hi, _ in row_gaps])
            row_gaps = _remove_ids(row_gaps, set(late.column("id").to_pylist()))
            read += late.num_rows
            yield _answers(late)
        state["gaps"] = row_gaps
        gaps = [g for g in state["batch_gaps"] if now.timestamp() - g[2] < GAP_SECONDS]
        if gaps:
            wanted = [i for lo, hi, _ in gaps for i in range(lo, hi + 1)][:MAX_GAP_BATCHES]
            found, late = self.log_store.batches_in(wanted)
            gaps = _remove_ids(gaps, set(found))
            read += late.num_rows
            yield _answers(_above(late, floor))
        cursor = int(state["batch_cursor"])
        while read < self.config.max_rows_per_tick:
            ids, batch, more = self.log_store.batches_after(cursor, self.config.batch_rows)
            if not ids:
                break
            before = np.concatenate([[cursor], ids[:-1]])
            skipped = np.flatnonzero(np.asarray(ids) > before + 1)
            gaps += [[int(before[i]) + 1, int(ids[i]) - 1, now.timestamp()] for i in skipped]
            cursor = ids[-1]
            read += batch.num_rows
            yield _answers(_above(batch, floor))
            if not more:
                break
        state["batch_cursor"], state["batch_gaps"] = cursor, gaps[-1000:]

    def _versions(self, batch: pa.Table) -> Iterator[tuple[SeriesKey, pa.Table]]:
        """The batch split by deployment version."""
        if not batch.num_rows:
            return
        keys = (
            batch.select(["deployment", "model", "version"])
            .group_by(["deployment", "model", "version"])
            .aggregate([])
            .to_pylist()
        )
        for key in keys:
            deployment, model, version = key["deployment"], key["model"], int(key["version"])
            mask = pc.and_(
                pc.and_(pc.equal(batch.column("deployment"), deployment), pc.equal(batch.column("model"), model)),
                pc.equal(batch.column("version"), version),
            )
            yield SeriesKey(deployment, model, version), batch.filter(mask) if len(keys) > 1 else batch

    @staticmethod
    def _configured(by_deployment: dict[str, list[str]], deployment: str) -> list[str]:
        return list(by_deployment.get(deployment, by_deployment.get("*", [])))

    def image_columns(self, deployment: str, model: str, version: int) -> list[str]:
        """The pixel inputs of the deployment's images: names, or ``prefix*`` patterns over the version's inputs."""
        patterns = self._configured(self.config.images, deployment)
        if not patterns:
            return []
        ref = self.reference(model, version)
        names = ref.features if ref is not None else []
        return [n for n in names if any(n == p or (p.endswith("*") and n.startswith(p[:-1])) for p in patterns)]

    def _segmented(self, deployment: str) -> bool:
        return bool(self._configured(self.config.segments, deployment))

    def _segment(
        self, deployment: str, feature: str, value: Any, state: SummarizerState, limit: int | None = None
    ) -> str | None:
        """``feature=value``, the value pooled into ``__other__`` past the first ``max_segment_values``
        (or ``limit``)."""
        if value is None:
            return None
        text = str(value)
        values = state["segment_values"].setdefault(deployment, {}).setdefault(feature, [])
        if text not in values:
            if len(values) >= (limit or self.config.max_segment_values):
                text = OTHER
            else:
                values.append(text)
        return segment_name(feature, text)

    def _segments(self, deployment: str, row: LoggedRow, state: SummarizerState) -> list[str]:
        out = [""]
        for feature in self._configured(self.config.segments, deployment):
            segment = self._segment(deployment, feature, row.inputs.get(feature), state)
            if segment is not None:
                out.append(segment)
        return out

    def _segment_rows(self, deployment: str, cols: LogColumns, state: SummarizerState) -> dict[str, np.ndarray]:
        """Each segment's row positions in ``cols`` ("" is every row)."""
        out = {"": np.arange(len(cols))}
        for feature in self._configured(self.config.segments, deployment):
            if feature not in cols.inputs.column_names or pa.types.is_null(cols.inputs.column(feature).type):
                continue
            encoded = pc.dictionary_encode(cols.inputs.column(feature)).combine_chunks()
            codes = encoded.indices.to_numpy(zero_copy_only=False)
            valid = encoded.indices.is_valid().to_numpy(zero_copy_only=False)
            for code, value in enumerate(encoded.dictionary.to_pylist()):
                segment = self._segment(deployment, feature, value, state)
                if segment is None:
                    continue
                rows = np.flatnonzero(valid & (codes == code))
                out[segment] = np.union1d(out[segment], rows) if segment in out else rows
        return out

    def _add_time_windows(
        self,
        deployment: str,
        model: str,
        version: int,
        deltas: _Deltas,
        state: SummarizerState,
        pending: dict[WindowKey, _Pending],
        origins: dict[str, np.ndarray],
    ) -> None:
        """Each row into the windows of its own time (a device's rows synced hours later too)."""
        cols = deltas.cols
        base = TIME_WIDTHS[BASE] * 1_000_000
        buckets = cols.at // base
        segments = self._segment_rows(deployment, cols, state)
        for segment, rows in origins.items():  # a device past MAX_DEVICES pools into @device=__other__
            name, _, value = segment.partition("=")
            pooled = self._segment(deployment, name, value, state, MAX_DEVICES if name == DEVICE else None)
            if pooled is not None:
                segments[pooled] = np.union1d(segments[pooled], rows) if pooled in segments else rows
        for segment, rows in segments.items():
            for bucket in np.unique(buckets[rows]):
                part = rows[buckets[rows] == bucket]
                delta = deltas.of(part)
                start = to_datetime(int(bucket) * base)
                for width, seconds in TIME_WIDTHS.items():
                    w_start = floor_time(start, seconds)
                    key = (deployment, model, version, segment, width, w_start)
                    _add(pending, key, delta, w_start + timedelta(seconds=seconds))

    def _add_count_windows(
        self,
        deployment: str,
        model: str,
        version: int,
        deltas: _Deltas,
        state: SummarizerState,
        pending: dict[WindowKey, _Pending],
    ) -> None:
        cols = deltas.cols
        n = self.config.count_window
        width = count_width(n)
        windows = state["counts"].setdefault(
            SeriesKey(deployment, model, version).to_text(), []
        )  # [start iso, rows, lo id, hi id], newest last
        i = 0
        while i < len(cols):
            if not windows or windows[-1][1] >= n:
                start = to_datetime(int(cols.at[i]))
                if windows and datetime.fromisoformat(windows[-1][0]) >= start:
                    start = datetime.fromisoformat(windows[-1][0]) + timedelta(microseconds=1)
                windows.append([start.isoformat(), 0, int(cols.ids[i]), int(cols.ids[i])])
            current = windows[-1]
            take = np.arange(i, min(len(cols), i + n - current[1]))
            ids = cols.ids[take]
            current[1] += int(take.size)
            current[2] = min(current[2], int(ids.min()))
            current[3] = max(current[3], int(ids.max()))
            key = (deployment, model, version, "", width, datetime.fromisoformat(current[0]))
            _add(pending, key, deltas.of(take), to_datetime(int(cols.at[take].max())))
            i += int(take.size)
        del windows[:-COUNT_HISTORY]

    def _write(self, pending: dict[WindowKey, _Pending], now: datetime, failures: Failures) -> list[MetricWindow]:
        if not pending:
            return []
        existing = self.windows.get_many(pending)
        out = []
        for key, item in pending.items():
            with failures.guard(key[:3], "window", describe(key)):
                out.append(self._updated(key, item, existing.get(key), now, failures))
        return out

    def _updated(
        self, key: WindowKey, item: _Pending, old: MetricWindow | None, now: datetime, failures: Failures
    ) -> MetricWindow:
        """The stored window with this tick's rows added. A stored summary that cannot be merged (a
        field missing or of the wrong type; a numeric column's lost sums are repaired by the merge)
        would fail at every tick: it is counted once and the window starts again from these rows. A
        stored performance that cannot be read is dropped the same way (labels landing recompute it)."""
        width, start = key[4], key[5]
        delta = settled_summary(_merged(item["deltas"]))  # the stored form (sketches stay lazy: written as lists)
        summary, restarted = delta, False
        if old is not None:
            try:
                summary = merge_summary(stored_summary(old), delta)
            except StoreError:
                raise
            except Exception as exc:
                failures.record(key[:3], "merge", describe(key), exc)
                summary, restarted = {**delta, "restarted": {"at": now.isoformat(), "rows_dropped": old.rows}}, True
        end = item["end"] if width not in TIME_WIDTHS else start + timedelta(seconds=TIME_WIDTHS[width])
        if old is not None and width not in TIME_WIDTHS:
            end = max(end, old.end)
        reuse = None
        if (
            old is not None
            and not restarted
            and width in WIDE
            and summary["rows"] < DRIFT_REGROWTH * old.summary.get("drift_rows", 0)
        ):
            reuse = old.metrics
        summary["drift_rows"] = (
            old.summary.get("drift_rows", 0) if old is not None and reuse is not None else summary["rows"]
        )
        performance = stored_performance(old) if old else None
        try:
            return self._window(key, end, summary, performance, now, reuse_drift=reuse)
        except StoreError:
            raise
        except Exception as exc:
            if performance is None:
                raise
            failures.record(key[:3], "performance", describe(key), exc)
            return self._window(key, end, summary, None, now, reuse_drift=reuse)

    def _window(
        self,
        key: WindowKey,
        end: datetime,
        summary: WindowSummary,
        performance: WindowPerformance | None,
        now: datetime,
        reuse_drift: dict[str, Any] | None = None,
        alpha: float | None = None,
    ) -> MetricWindow:
        deployment, model, version, segment, width, start = key
        if width in TIME_WIDTHS:
            seconds = min(TIME_WIDTHS[width], max((now - start).total_seconds(), 1.0))
        else:
            first, last = summary.get("first_at"), summary.get("last_at")
            seconds = (
                (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds() if first and last else 0
            )
        metrics = window_metrics(
            summary,
            performance,
            self.reference(model, version),
            seconds,
            reuse_drift=reuse_drift,
            images=self.image_columns(deployment, model, version),
            alpha=alpha,
        )
        summary_json, performance_json = cast(dict[str, Any], summary), cast(dict[str, Any] | None, performance)
        return MetricWindow(
            deployment,
            model,
            version,
            segment,
            width,
            start,
            end,
            int(summary["rows"]),
            summary_json,
            performance_json,
            metrics,
        )

    # -- late labels -------------------------------------------------------------------------
    def _relabel(
        self, state: SummarizerState, now: datetime, staged: dict[WindowKey, MetricWindow], failures: Failures
    ) -> list[MetricWindow]:
        """Recompute performance where labels landed since the last tick (and re-merge what sits above)."""
        cursor = datetime.fromisoformat(state["label_cursor"]) if state["label_cursor"] else None
        since = cursor - LABEL_OVERLAP if cursor is not None else datetime.fromtimestamp(0, UTC)
        seen: dict[str, str] = state.get("labels_seen", {})  # row id -> label time, within the overlap
        fresh = [row for row in self.log_store.labelled_ids_since(since) if seen.get(str(row[3])) != row[5].isoformat()]
        if not fresh:
            return []
        newest = max(row[5] for row in fresh)
        base: set[tuple[str, str, int, datetime]] = set()
        counted: set[tuple[str, str, int, int]] = set()  # (deployment, model, version, index in state["counts"])
        for deployment, model, version, row_id, at, _ in fresh:
            base.add((deployment, model, version, floor_time(at, TIME_WIDTHS[BASE])))
            windows = state["counts"].get(SeriesKey(deployment, model, version).to_text(), [])
            for i, (_, _, lo, hi) in enumerate(windows):
                if lo <= row_id <= hi:
                    counted.add((deployment, model, version, i))
                    break
        updates: dict[WindowKey, WindowPerformance | None] = {}
        fresh_ids = {row[3] for row in fresh}
        labelled: dict[tuple[str, str, int, datetime], list[LoggedRow]] = {}
        for deployment, model, version, start in base:
            labelled[(deployment, model, version, start)] = self.log_store.labelled_rows(
                deployment,
                model,
                version,
                start,
                start + timedelta(seconds=TIME_WIDTHS[BASE]),
                inputs=self._segmented(deployment),
            )
        # the detectors see the new labels first (on a scratch copy, kept only if the label cursor moves on)
        scratch: Detectors = {
            "detectors": dict(state.get("detectors", {})),
            "detections": {k: list(v) for k, v in state.get("detections", {}).items()},
        }
        self._detect(scratch, fresh, [r for rows in labelled.values() for r in rows if r.id in fresh_ids], failures)
        step = timedelta(seconds=TIME_WIDTHS[BASE])
        for (deployment, model, version, start), rows in labelled.items():
            with failures.guard((deployment, model, version), "performance", f"{BASE} window at {start.isoformat()}"):
                by_segment: dict[str, list[LoggedRow]] = {}
                for r in rows:
                    for segment in self._segments(deployment, r, state):
                        by_segment.setdefault(segment, []).append(r)
                ref = self.reference(model, version)
                updates.update(
                    {
                        (deployment, model, version, segment, BASE, start): _with_detections(
                            performance_of(part, ref),
                            scratch,
                            deployment,
                            model,
                            version,
                            _between_times(start, start + step),
                        )
                        for segment, part in by_segment.items()
                    }
                )
        width = count_width(self.config.count_window)
        for deployment, model, version, i in counted:
            start_iso, _, lo, hi = state["counts"][SeriesKey(deployment, model, version).to_text()][i]
            with failures.guard((deployment, model, version), "performance", f"{width} window at {start_iso}"):
                rows = self.log_store.labelled_rows_between_ids(deployment, model, version, lo, hi)
                updates[(deployment, model, version, "", width, datetime.fromisoformat(start_iso))] = _with_detections(
                    performance_of(rows, self.reference(model, version)),
                    scratch,
                    deployment,
                    model,
                    version,
                    _between_ids(lo, hi),
                )
        written, waiting = self._set_performance(updates, now, staged, failures)
        # a window not summarised yet: look at these labels again (one that failed is counted, not waited for)
        if not any(k[3] == "" for k in waiting):
            state["detectors"], state["detections"] = scratch["detectors"], scratch["detections"]  # once per label
            horizon = max(newest, cursor) if cursor is not None else newest
            state["label_cursor"] = horizon.isoformat()
            seen.update({str(row[3]): row[5].isoformat() for row in fresh})
            state["labels_seen"] = {
                k: v for k, v in seen.items() if datetime.fromisoformat(v) >= horizon - LABEL_OVERLAP
            }
        # the hour and day above each recomputed 5-minute window: merged from their 5-minute parts
        above: dict[WindowKey, WindowPerformance | None] = {}
        for deployment, model, version, segment, w, start in list(updates):
            if w != BASE:
                continue
            for wide in ("1h", "1d"):
                w_start = floor_time(start, TIME_WIDTHS[wide])
                key = (deployment, model, version, segment, wide, w_start)
                if key in above:
                    continue
                w_end = w_start + timedelta(seconds=TIME_WIDTHS[wide])
                stored = self.windows.performance_within(deployment, model, version, segment, BASE, w_start, w_end)
                parts = cast(dict[datetime, WindowPerformance | None], dict(stored))  # a staged part may have none yet
                for mw in [*staged.values(), *written]:  # this tick's, not committed yet, override the stored
                    if (mw.deployment, mw.model, mw.version, mw.segment, mw.width) == (
                        deployment,
                        model,
                        version,
                        segment,
                        BASE,
                    ) and w_start <= mw.start < w_end:
                        parts[mw.start] = stored_performance(mw)
                merged: WindowPerformance | None = None
                for part_start, p in sorted(parts.items()):  # a part that cannot be merged is left out, counted
                    with failures.guard(
                        (deployment, model, version),
                        "performance",
                        f"{BASE} window at {part_start.isoformat()} into {wide}",
                    ):
                        merged = merge_performance(merged, p)
                above[key] = merged
        written += self._set_performance(above, now, {**staged, **{w.key: w for w in written}}, failures)[0]
        return written

    def _detect(
        self, state: Detectors, fresh: list[tuple[Any, ...]], rows: list[LoggedRow], failures: Failures
    ) -> None:
        """Feed each version's concept-drift detector the errors of rows labelled since the last tick,
        in the order their labels arrived; remember where it fired (row id and time)."""
        order = {row[3]: (row[5], row[3]) for row in fresh}
        detectors = state.setdefault("detectors", {})
        detections = state.setdefault("detections", {})
        params = dict(self.config.concept_drift)
        name = params.pop("detector", "adwin")
        if name == "page_hinkley":
            params.setdefault("mode", "up")  # rising errors are what decay looks like
        by_version: dict[SeriesKey, list[LoggedRow]] = {}
        for r in sorted(rows, key=lambda r: order[r.id]):
            if r.error is None and r.prediction is not None:
                by_version.setdefault(SeriesKey(r.deployment, r.model, r.version), []).append(r)
        for series, part in by_version.items():
            with failures.guard(series, "concept drift"):
                self._detect_version(series, part, name, params, detectors, detections, failures)

    def _detect_version(
        self,
        series: SeriesKey,
        part: list[LoggedRow],
        name: str,
        params: dict[str, Any],
        detectors: dict[str, dict[str, Any]],
        detections: dict[str, list[Detection]],
        failures: Failures,
    ) -> None:
        deployment, model, version = series
        skey = series.to_text()
        errors = np.minimum(row_errors(part, self.reference(model, version)), DETECTOR_ERROR_MAX)
        keep = np.isfinite(errors)
        if not keep.any():
            return
        kept = [r for r, k in zip(part, keep) if k]
        try:
            detector = detector_from_state(detectors[skey]) if skey in detectors else make_detector(name, **params)
        except DetectorError as exc:  # a state that cannot be loaded (an overflow left null in it): start afresh
            failures.record(series, "concept drift", "stored detector state", exc)
            detector = make_detector(name, **params)
        found = list(detections.get(skey, []))  # kept only if the whole update succeeds
        for row, value in zip(kept, errors[keep].tolist()):
            before = getattr(detector, "estimation", None)
            detector.update(value)
            if not detector.drift_detected:
                continue
            after = getattr(detector, "estimation", None)
            if before is not None and after is not None and after <= before:
                continue  # errors fell back (a recovery): a change, but not the model decaying
            found.append([row.id, row.at.isoformat()])
            log.warning(
                "concept drift: %s (%s:%s) errors rose at row %s, labelled %s",
                deployment,
                model,
                version,
                row.id,
                row.label_at,
            )
        detections[skey] = found[-COUNT_HISTORY:]
        detectors[skey] = detector.to_state()

    def _set_performance(
        self,
        updates: dict[WindowKey, WindowPerformance | None],
        now: datetime,
        staged: dict[WindowKey, MetricWindow],
        failures: Failures,
    ) -> tuple[list[MetricWindow], list[WindowKey]]:
        """The windows with their new performance, and the keys of those not summarised yet."""
        if not updates:
            return [], []
        existing = self.windows.get_many([k for k in updates if k not in staged])
        existing.update({k: staged[k] for k in updates if k in staged})
        out, waiting = [], []
        for key, performance in updates.items():
            old = existing.get(key)
            if old is None:  # labels for rows the cursor has not summarised yet: the next tick writes them
                waiting.append(key)
                continue
            with failures.guard(key[:3], "performance", describe(key)):
                out.append(self._window(key, old.end, stored_summary(old), performance, now, reuse_drift=old.metrics))
        return out, waiting


def origin_rows(batch: pa.Table) -> dict[str, np.ndarray]:
    """The positions of a batch's rows from batch jobs and edge devices, by origin segment: ``@source=batch``,
    ``@source=edge``, ``@device=<id>`` (the ``@`` keeps them apart from segments by an input feature). Online
    rows carry no source in their routing and have none: whole-traffic windows hold every row, so online
    traffic is the rest, and a log of online rows only costs this one look at the routing's fields."""
    if "routing" not in batch.column_names or not batch.num_rows:
        return {}
    routing = batch.column("routing")
    kind = routing.type
    if not pa.types.is_struct(kind) or kind.get_field_index("source") < 0:
        return {}
    struct = routing.combine_chunks() if routing.num_chunks != 1 else routing.chunk(0)
    out: dict[str, np.ndarray] = {}
    for name, segment in (("source", SOURCE), ("device", DEVICE)):
        if kind.get_field_index(name) < 0:
            continue
        encoded = pc.dictionary_encode(pc.struct_field(struct, name).cast(pa.string()))
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        valid = encoded.indices.is_valid().to_numpy(zero_copy_only=False)
        for code, value in enumerate(encoded.dictionary.to_pylist()):
            rows = np.flatnonzero(valid & (codes == code))
            if rows.size and value:
                out[segment_name(segment, value)] = rows
    return out


def describe(key: WindowKey) -> str:
    """A window, named in a log line: ``5m window at 2026-11-20T12:00:00+00:00 (segment country=DE)``."""
    _, _, _, segment, width, start = key
    return f"{width} window at {start.isoformat()}" + (f" (segment {segment})" if segment else "")


def _add(pending: dict[WindowKey, _Pending], key: WindowKey, delta: WindowSummary, end: datetime) -> None:
    item = pending.get(key)
    if item is None:
        pending[key] = {"deltas": [delta], "end": end}
    else:
        item["deltas"].append(delta)
        item["end"] = max(item["end"], end)


def _merged(deltas: list[WindowSummary]) -> WindowSummary:
    """Pairwise, as a balanced tree: the day window's many batch deltas are not merged one by one
    into an ever larger summary."""
    while len(deltas) > 1:
        deltas = [
            merge_summary(deltas[i], deltas[i + 1]) if i + 1 < len(deltas) else deltas[i]
            for i in range(0, len(deltas), 2)
        ]
    return deltas[0]


class _TwoStacks:
    """The merged summary of a sliding window's full panes, each pane merged about twice over its life
    instead of once per tick (the two-stacks sliding-window aggregation): panes leave from the front,
    which holds for each pane the merge of it and the front's later panes; they arrive at the back,
    merged as they come; when the front runs out, the back becomes it."""

    def __init__(self) -> None:
        self.front: list[tuple[str, WindowSummary]] = []  # (pane start, merge of it and the later front panes)
        self.back: list[str] = []
        self.back_summary: WindowSummary | None = None

    def merged(self, panes: list[tuple[str, WindowSummary]]) -> WindowSummary | None:
        """The merge of ``panes`` ((start, summary), oldest first), which are the last call's panes
        without some of its oldest and with new ones after (else it starts over)."""
        if not panes:
            return None
        starts = [start for start, _ in panes]
        inside = set(starts)
        while self.front and self.front[0][0] not in inside:
            self.front.pop(0)
        if not self.front and self.back and self.back[0] not in inside:
            self.back, self.back_summary = [], None  # the whole back left too: start over below
        held = [start for start, _ in self.front] + self.back
        if starts[: len(held)] != held or not held:
            self.front, self.back, self.back_summary = [], [], None
            held = []
        for start, summary in panes[len(held) :]:
            self.back.append(start)
            self.back_summary = summary if self.back_summary is None else merge_summary(self.back_summary, summary)
        if not self.front:  # the back becomes the front: each pane's merge with the ones after it
            by_start = dict(panes)
            suffix: WindowSummary | None = None
            for start in reversed(self.back):
                suffix = by_start[start] if suffix is None else merge_summary(by_start[start], suffix)
                self.front.insert(0, (start, suffix))
            self.back, self.back_summary = [], None
        return self.front[0][1] if self.back_summary is None else merge_summary(self.front[0][1], self.back_summary)


def _above(batch: pa.Table, floor: int) -> pa.Table:
    """Rows with an id above ``floor`` (those up to it were summarised before the columnar log)."""
    return batch if floor <= 0 or not batch.num_rows else batch.filter(pc.greater(batch.column("id"), floor))


def _remove_ids(gaps: Sequence[list[Any]], ids: set[int]) -> list[list[Any]]:
    """Gaps (inclusive id ranges) without ``ids``, split where a found id sat inside one."""
    out: list[list[Any]] = []
    for lo, hi, seen in gaps:
        inside = sorted(i for i in ids if lo <= i <= hi)
        start = lo
        for i in inside:
            if i > start:
                out.append([start, i - 1, seen])
            start = i + 1
        if start <= hi:
            out.append([start, hi, seen])
    return out


def _between_times(start: datetime, end: datetime) -> Callable[[tuple[int, datetime]], bool]:
    """A detection (row id, time) at a time in [start, end): `_with_detections`' test for a window by time."""
    return lambda d: start <= d[1] < end


def _between_ids(lo: int, hi: int) -> Callable[[tuple[int, datetime]], bool]:
    """A detection (row id, time) on a row id in [lo, hi]: `_with_detections`' test for a window by count."""
    return lambda d: lo <= d[0] <= hi


def _with_detections(
    performance: WindowPerformance | None,
    state: Detectors,
    deployment: str,
    model: str,
    version: int,
    inside: Callable[[tuple[int, datetime]], bool],
) -> WindowPerformance | None:
    """The window's performance with how many concept-drift detections fell on its rows."""
    if performance is None:
        return None
    found = state.get("detections", {}).get(SeriesKey(deployment, model, version).to_text(), [])
    performance["detections"] = sum(1 for row_id, at in found if inside((row_id, datetime.fromisoformat(at))))
    return performance


def row_errors(rows: Sequence[LoggedRow], ref: VersionReference | None) -> np.ndarray:
    """Per-row error: 0/1 for a classifier (wrong label), the absolute error for a regressor."""
    if ref is not None and ref.task == "classification":
        return np.asarray([0.0 if label_text(r.label) == label_text(r.prediction) else 1.0 for r in rows])
    out = []
    for r in rows:
        try:
            out.append(abs(float(r.label) - float(r.prediction)))
        except (TypeError, ValueError):
            out.append(float("nan"))
    return np.asarray(out, dtype=np.float64)


def _answers(batch: pa.Table) -> pa.Table:
    """The rows a version answered (shadows are compared, not monitored, here)."""
    answer = pc.is_in(batch.column("role"), pa.array(ANSWER_ROLES))
    return batch if pc.all(answer).as_py() in (True, None) else batch.filter(answer)  # (copies every column)


class _Deltas:
    """Lazy summaries (`summarize_columns`) of parts of one version's rows, each run of rows summarised
    once: a count window's rows that are also a 5-minute window's (a batch inside one) share its summary
    (never changed once made: merges build new ones)."""

    def __init__(self, cols: LogColumns, ref: VersionReference | None, texts: Sequence[str]) -> None:
        self.cols, self.ref, self.texts = cols, ref, texts
        self._runs: dict[tuple[int, int], WindowSummary] = {}

    def of(self, rows: np.ndarray) -> WindowSummary:
        """The summary of the rows at these positions (ascending, distinct)."""
        if not rows.size or int(rows[-1]) - int(rows[0]) + 1 != rows.size:
            return summarize_columns(part_of(self.cols, rows), self.ref, self.texts, lazy=True)
        run = (int(rows[0]), int(rows[-1]) + 1)
        if run not in self._runs:
            self._runs[run] = summarize_columns(part_of(self.cols, rows), self.ref, self.texts, lazy=True)
        return self._runs[run]


def part_of(cols: LogColumns, rows: np.ndarray) -> LogColumns:
    """The rows at these positions (ascending, distinct): views where they are one run of rows."""
    if rows.size == len(cols) and (rows.size == 0 or rows[-1] == rows.size - 1):
        return cols
    if rows.size and int(rows[-1]) - int(rows[0]) + 1 == rows.size:
        return cols.slice(int(rows[0]), int(rows[-1]) + 1)
    return cols.take(rows)
