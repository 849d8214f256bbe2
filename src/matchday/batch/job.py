"""A batch scoring job: planned (everything checked, nothing scored), then run by an engine.

`BatchScoring.plan` resolves the model, opens the input, checks every file's columns against the
signature, and starts or resumes the output folder's manifest; `BatchJob.run` scores the parts
not yet done and records how the job ended, whatever ended it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import fsspec

from matchday.batch.errors import BatchError, BatchInputError, RejectRateExceeded, ScoringFailed
from matchday.batch.local import LocalEngine
from matchday.batch.manifest import MANIFEST, Manifest, options_hash, read_manifest, start_or_resume, write_manifest
from matchday.batch.monitor_feed import MonitorFeed
from matchday.batch.ray_engine import ModelPayload, RayEngine
from matchday.batch.scoring import BatchScorer, OutputLayout
from matchday.batch.sink import Folder, PartSink
from matchday.batch.source import PART_ROWS, BatchInput, Part, open_input
from matchday.batch.validation import check_schema
from matchday.registry import Registry, Signature
from matchday.store import ModelVersionRecord, PredictionLogStore

Engine = Literal["local", "ray"]
BATCH_SIZE = 65_536  # rows per record batch: big enough that a model call's overhead vanishes, small for memory


@dataclass(frozen=True)
class BatchOptions:
    """How to score: ``matchday batch score``'s options."""

    id_column: str | None = None
    engine: Engine = "local"
    address: str | None = None  # a Ray cluster (the ray engine); None: a local one
    rejects: str | None = None  # the rejects folder; None: OUTPUT/_rejects
    max_reject_rate: float = 0.01
    resume: bool = False
    deployment: str | None = None  # whose log the rows go to (marked source: batch)
    batch_size: int = BATCH_SIZE
    part_rows: int = PART_ROWS  # a big Parquet file is cut into parts of about this many rows (whole row groups)

    def check(self) -> None:
        problems = []
        if not 0 <= self.max_reject_rate <= 1:
            problems.append(f"--max-reject-rate must be between 0 and 1, not {self.max_reject_rate}")
        if self.batch_size < 1:
            problems.append(f"--batch-size must be at least 1, not {self.batch_size}")
        if self.engine not in ("local", "ray"):
            problems.append(f"--engine must be local or ray, not {self.engine!r}")
        if self.address and self.engine != "ray":
            problems.append("--address is for the ray engine (add --engine ray)")
        if problems:
            raise BatchError("invalid batch options", problems)


@dataclass(frozen=True)
class BatchResult:
    """How a job ended (it ran to the end: a stopped job raises)."""

    job_id: str
    model: str
    version: int
    output: str
    rejects: str
    rows: int  # rows read by this run
    scored: int
    rejected: int
    parts: int  # parts done by this run
    skipped_parts: int  # parts a resumed job found done
    seconds: float
    logged: int  # rows written to the deployment's log

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


Progress = Callable[[int, int], None]  # (rows read, rows rejected) since the last call


class BatchJob:
    """A planned job: what will be scored, where, by which version; `run` does it."""

    def __init__(
        self,
        parts: _Parts,
        source: BatchInput,
        output: Folder,
        rejects: Folder,
        manifest: Manifest,
        record: ModelVersionRecord,
        options: BatchOptions,
    ) -> None:
        self._parts, self.source, self.output, self.rejects = parts, source, output, rejects
        self.manifest, self.record, self.options = manifest, record, options
        self.pending: list[Part] = [p for p in source.parts if p.key not in manifest.parts]

    @property
    def job_id(self) -> str:
        return self.manifest.job_id

    @property
    def total_rows(self) -> int:
        return self.source.rows

    @property
    def pending_rows(self) -> int:
        return sum(p.rows for p in self.pending)

    def run(self, progress: Progress | None = None) -> BatchResult:
        """Score the pending parts; on any error the unfinished part's files go, the manifest says why,
        and the error is raised (finished parts stay: `--resume` goes on from them)."""
        started = time.perf_counter()
        write_manifest(self.output.fs, self.output.path, self.manifest)
        signature = Signature.model_validate(self.record.signature)
        feed = None
        keep_inputs = self.options.deployment is not None
        counts = _Counts(progress)
        try:
            predictor = self._parts.registry.load(self.record.ref) if self.options.engine == "local" else None
            has_proba = predictor.has_proba if predictor is not None else self._has_proba(signature)
            layout = OutputLayout.of(signature, has_proba)
            if self.options.deployment is not None:
                feed = MonitorFeed(
                    self._parts.log,
                    self.options.deployment,
                    self.record.name,
                    self.record.version,
                    self.manifest.model_ref,
                    self.job_id,
                    layout,
                    list(signature.input_names),
                )
            sink = PartSink(
                self.output, self.rejects, self.manifest, layout, self.options.id_column,
                self.options.max_reject_rate, feed, counts,
            )  # fmt: skip
            try:
                if self.options.engine == "local":
                    assert predictor is not None
                    scorer = BatchScorer(
                        predictor, signature, id_column=self.options.id_column, keep_inputs=keep_inputs
                    )
                    LocalEngine().run(self.source, self.pending, scorer, sink, self.options.batch_size)
                else:
                    scorer = _RemoteScorer(signature, self.options.id_column, keep_inputs, layout)
                    RayEngine(self.options.address).run(
                        self.source, self.pending, scorer, sink, self.options.batch_size,
                        self._payload(), self.options.max_reject_rate,
                    )  # fmt: skip
                sink.check_rate(final=True)
            except BaseException as exc:
                sink.abort(keep_rejects=isinstance(exc, RejectRateExceeded))  # the rejects that stopped it stay
                raise
        except RejectRateExceeded as exc:
            self._end("stopped", exc.message)
            raise
        except KeyboardInterrupt:
            self._end("stopped", "interrupted")
            raise
        except BatchError as exc:
            self._end("failed", str(exc))
            raise
        except Exception as exc:
            self._end("failed", f"{type(exc).__name__}: {exc}")
            raise ScoringFailed(
                f"batch job {self.job_id} failed: {type(exc).__name__}: {exc}",
                ["the parts finished before it are kept: run again with --resume"],
            ) from exc
        self._end("done", None)
        return BatchResult(
            self.job_id,
            self.record.name,
            self.record.version,
            self.output.path,
            self.rejects.path,
            counts.rows,
            counts.rows - counts.rejected,
            counts.rejected,
            len(self.pending),
            len(self.source.parts) - len(self.pending),
            time.perf_counter() - started,
            feed.written if feed is not None else 0,
        )

    def _end(self, state: Literal["done", "stopped", "failed"], reason: str | None) -> None:
        self.manifest.state, self.manifest.reason = state, reason
        write_manifest(self.output.fs, self.output.path, self.manifest)

    def _payload(self) -> ModelPayload:
        data = self._parts.registry.artifacts.get(self.record.artifact_sha256)  # checked against its sha256
        return ModelPayload(
            self.record.flavor, data, dict(self.record.flavor_options), dict(self.record.signature), self.record.ref
        )

    def _has_proba(self, signature: Signature) -> bool:
        """Whether the version answers probabilities, asked of the loaded model once (the driver of a
        Ray job loads it just for this: the actors must agree with the output's columns)."""
        return self._parts.registry.load(self.record.ref).has_proba


class _RemoteScorer(BatchScorer):
    """The driver's view of the actors' scorer: its columns and layout, no model."""

    def __init__(self, signature: Signature, id_column: str | None, keep_inputs: bool, layout: OutputLayout) -> None:
        self.signature, self.id_column, self.keep_inputs, self.layout = signature, id_column, keep_inputs, layout

    def score(self, batch: Any, max_failures: int | None = None) -> Any:  # pragma: no cover - never called
        raise NotImplementedError("the actors score")


class _Counts:
    def __init__(self, progress: Progress | None) -> None:
        self.rows = self.rejected = 0
        self.progress = progress

    def __call__(self, rows: int, rejected: int) -> None:
        self.rows += rows
        self.rejected += rejected
        if self.progress is not None:
            self.progress(rows, rejected)


@dataclass(frozen=True)
class _Parts:
    registry: Registry
    log: PredictionLogStore
    check_deployment: Callable[[str], Any]


class BatchScoring:
    """Batch scoring over a workspace's registry and log: what the CLI and the demo call."""

    def __init__(self, registry: Registry, log: PredictionLogStore, check_deployment: Callable[[str], Any]) -> None:
        self._parts = _Parts(registry, log, check_deployment)

    def plan(self, model_ref: str, input: str, output: str, options: BatchOptions | None = None) -> BatchJob:
        """The job, checked: the model resolves, the input reads and holds the model's columns, the
        output is new (or, with ``resume``, holds this same job). Nothing is scored or written yet."""
        options = options or BatchOptions()
        options.check()
        record = self._parts.registry.get_version(model_ref)
        signature = Signature.model_validate(record.signature)
        if options.deployment is not None:
            self._parts.check_deployment(options.deployment)
        text = [*signature.input_names] + ([options.id_column] if options.id_column else [])
        source = open_input(input, text, part_rows=options.part_rows)
        for path, schema in source.schemas.items():
            check_schema(schema, signature, path, options.id_column)
        out = _folder(output, "OUTPUT")
        rejects = _folder(options.rejects, "--rejects") if options.rejects else Folder(out.fs, f"{out.path}/_rejects")
        found = read_manifest(out.fs, out.path)
        if found is None and out.fs.isdir(out.path) and out.fs.ls(out.path):
            raise BatchError(f"{output} is not empty and holds no batch job ({MANIFEST}); score into a new folder")
        settings = {"id_column": options.id_column, "deployment": options.deployment, "rejects": rejects.path}
        new = Manifest(
            job_id=uuid.uuid4().hex,
            model_ref=model_ref,
            model=record.name,
            version=record.version,
            model_sha256=record.artifact_sha256,
            options=settings,
            options_sha256=options_hash(settings),
            input=input,
            input_sha256=source.fingerprint(),
            total_parts=len(source.parts),
            total_rows=source.rows,
            engine=options.engine,
        )
        manifest = start_or_resume(found, new, options.resume, output)
        return BatchJob(self._parts, source, out, rejects, manifest, record, options)

    def score(
        self,
        model_ref: str,
        input: str,
        output: str,
        options: BatchOptions | None = None,
        progress: Progress | None = None,
    ) -> BatchResult:
        """Plan and run a job in one call (what the demo calls)."""
        return self.plan(model_ref, input, output, options).run(progress)


def _folder(url: str, what: str) -> Folder:
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except Exception as exc:
        raise BatchInputError(f"{what} {url}: {type(exc).__name__}: {exc}") from exc
    if fs.isfile(path):
        raise BatchError(f"{what} {url} is a file; give a folder (one Parquet file per input part goes there)")
    return Folder(fs, path.rstrip("/"))
