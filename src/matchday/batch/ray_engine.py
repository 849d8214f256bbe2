"""The Ray Data engine: the same contract (output parts, rejects, manifest, log) with the reading and
scoring spread over a Ray cluster.

``read_parquet``/``read_csv`` -> ``map_batches(_RayScorer, compute=ActorPoolStrategy(...))``: each
actor loads the version once, from the sha256-checked artifact bytes the driver put in the object
store (a cluster's nodes need no access to the registry). The scored blocks stream back to the
driver in input order, which cuts them into the job's parts and writes them as the local engine
does; the writing stays on the driver, so parts, rejects and the manifest are the same files.

On two CPUs an actor pool that takes every CPU leaves none to the read tasks and the job hangs:
`pool_shape` keeps one CPU (half of one, on a one-CPU cluster) for them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from matchday.batch.errors import BatchError, ScoringFailed
from matchday.batch.scoring import BatchScorer
from matchday.batch.sink import PartSink
from matchday.batch.source import BatchInput, Part
from matchday.ray_cluster import RayMissing, connect
from matchday.registry import Signature, load_packed


@dataclass(frozen=True)
class ModelPayload:
    """What an actor needs to load the version without the registry: its checked bytes and how to read them."""

    flavor: str
    data: bytes
    options: dict[str, Any]
    signature: dict[str, Any]
    ref: str


def pool_shape(cpus: float) -> tuple[int, float]:
    """Actors, and CPUs each, that leave the read tasks a CPU (half of one on a one-CPU cluster).

    >>> pool_shape(2)
    (1, 1.0)
    >>> pool_shape(8)
    (7, 1.0)
    >>> pool_shape(1)
    (1, 0.5)
    """
    if cpus < 2:
        return 1, 0.5
    actors = int(cpus - 1)
    return actors, round((cpus - 1) / actors, 3)


class _RayScorer:
    """One actor of the pool: the version loaded once, scoring the batches Ray hands it."""

    def __init__(self, payload: ModelPayload, id_column: str | None, keep_inputs: bool, max_failures: int) -> None:
        cache = Path(tempfile.mkdtemp(prefix="matchday-batch-"))
        predictor = load_packed(payload.flavor, payload.data, payload.options, cache)
        signature = Signature.model_validate(payload.signature)
        predictor.signature, predictor.ref = signature, payload.ref
        self.scorer = BatchScorer(predictor, signature, id_column=id_column, keep_inputs=keep_inputs)
        self.max_failures = max_failures

    def __call__(self, batch: pa.Table) -> pa.Table:
        table = batch.combine_chunks()
        record = table.to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema=table.schema)
        return self.scorer.score(record, self.max_failures)


class RayEngine:
    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def _ray(self) -> Any:
        try:
            return connect(self.address)
        except RayMissing as exc:  # pragma: no cover - the [ray] extra is in dev
            raise BatchError(str(exc)) from exc

    def run(
        self,
        source: BatchInput,
        parts: Sequence[Part],
        scorer: BatchScorer,
        sink: PartSink,
        batch_size: int,
        payload: ModelPayload,
        max_reject_rate: float,
    ) -> None:
        """Score the files of ``parts`` on Ray and write ``parts`` (a file partly done is read whole; its
        finished parts' rows are passed over)."""
        ray = self._ray()
        from ray.data import ActorPoolStrategy, DataContext

        pending = {p.key for p in parts}
        files = list(dict.fromkeys(p.path for p in parts))
        layout = [[p for p in source.parts if p.path == f] for f in files]  # every part of each file, in order
        DataContext.get_current().execution_options.preserve_order = True  # rows come back in input order
        actors, cpus = pool_shape(float(ray.cluster_resources().get("CPU", 1)))
        read_cpus = 1.0 if cpus >= 1 else 0.5
        columns = scorer.columns()
        filesystem = None if _local(source) else source.arrow_filesystem()
        if source.format == "parquet":
            dataset = ray.data.read_parquet(files, filesystem=filesystem, num_cpus=read_cpus).select_columns(columns)
        else:
            convert = pacsv.ConvertOptions(
                column_types={c: pa.string() for c in source.text_columns},
                strings_can_be_null=True,
                include_columns=columns,
            )
            dataset = ray.data.read_csv(files, filesystem=filesystem, convert_options=convert, num_cpus=read_cpus)
        scored = dataset.map_batches(
            _RayScorer,
            fn_constructor_args=(payload, scorer.id_column, scorer.keep_inputs, int(max_reject_rate * batch_size) + 1),
            compute=ActorPoolStrategy(size=actors),
            batch_size=batch_size,
            num_cpus=cpus,
            batch_format="pyarrow",
        )
        cutter = _Cutter(layout, pending, sink)
        for block in scored.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=2):
            cutter.feed(block)
        cutter.close()


class _Cutter:
    """Cuts the ordered stream of scored rows into the job's parts, passing over parts already done."""

    def __init__(self, layout: list[list[Part]], pending: set[str], sink: PartSink) -> None:
        self.queue = [p for parts in layout for p in parts]
        self.pending, self.sink = pending, sink
        self.at = 0  # rows of the current part already seen

    def feed(self, table: pa.Table) -> None:
        offset = 0
        while offset < table.num_rows:
            if not self.queue:
                raise ScoringFailed("Ray returned more rows than the input holds")
            part = self.queue[0]
            take = min(part.rows - self.at, table.num_rows - offset)
            if part.key in self.pending and take:
                self.sink.write(part, part.first_row + self.at, table.slice(offset, take))
            offset += take
            self.at += take
            if self.at == part.rows:
                self._close_part()

    def _close_part(self) -> None:
        part = self.queue.pop(0)
        if part.key in self.pending:
            self.sink.finish(part)
        self.at = 0

    def close(self) -> None:
        while self.queue and self.queue[0].rows == 0 and self.at == 0:
            self._close_part()
        if self.queue:
            raise ScoringFailed(f"Ray returned fewer rows than the input holds (stopped in part {self.queue[0].key})")


def _local(source: BatchInput) -> bool:
    import fsspec.implementations.local

    return isinstance(source.fs, fsspec.implementations.local.LocalFileSystem)
