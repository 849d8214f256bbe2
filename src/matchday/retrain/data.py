"""The training contract: what a trainer is given (`TrainingData`) and how a run's data is gathered and kept.

A run's data is written once, as Parquet files with a manifest (counts, row ids, sha256), into the
run's folder: the trainer (in a child process or on a Ray cluster) reads those, the evaluation reads
the same holdout, and a resumed run finds them again instead of reading a log that has moved on.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from matchday.retrain.errors import NotEnoughData

Part = Literal["train", "production", "reference", "holdout"]
META = ("logged_at", "source", "label_source")  # beside the inputs and the label in every part
_FILES = {"reference": "reference.parquet", "production": "production.parquet", "holdout": "holdout.parquet"}


@dataclass(frozen=True)
class ChampionArtifact:
    """The serving version's packed artifact: bytes travel to a child process or a Ray task, a Predictor may not."""

    ref: str
    flavor: str
    data: bytes
    options: dict[str, Any]
    signature: dict[str, Any]


@dataclass(frozen=True)
class TrainingData:
    """What a trainer gets: ``def train(data: TrainingData) -> model``.

    ``reference``: the rows the champion was registered with (None when it kept none or the policy
    leaves them out); ``production``: the labelled production rows of the window, minus the holdout;
    ``holdout``: the newest labelled rows, kept apart (the candidate is judged on them, never trained
    on them). Each part holds the inputs as columns, the label under ``target``, and ``logged_at``,
    ``source`` (served, failed_over, reference) and ``label_source`` (feedback, human, reference).
    """

    deployment: str
    target: str
    inputs: list[str]
    task: str
    classes: list[Any] | None
    reference: pa.Table | None
    production: pa.Table
    holdout: pa.Table
    champion_artifact: ChampionArtifact | None = None
    _champion: list[Any] = field(default_factory=list, repr=False, compare=False)

    def arrow(self, part: Part = "train") -> pa.Table:
        """One part as an Arrow table; ``train`` is the reference rows (if any) then the production rows."""
        if part == "train":
            pieces = [t for t in (self.reference, self.production) if t is not None and t.num_rows]
            if not pieces:
                return self.production
            return pa.concat_tables(pieces, promote_options="permissive")
        if part == "reference":
            return self.reference if self.reference is not None else self.production.schema.empty_table()
        return {"production": self.production, "holdout": self.holdout}[part]

    def frame(self, part: Part = "train") -> Any:
        """One part as a pandas DataFrame (inputs, the label under ``target``, logged_at, source, label_source)."""
        return self.arrow(part).to_pandas()

    def features(self, part: Part = "train") -> Any:
        """The inputs alone, in the signature's order, as a DataFrame: ``model.fit(data.features(), data.labels())``."""
        return self.arrow(part).select(self.inputs).to_pandas()

    def labels(self, part: Part = "train") -> np.ndarray:
        return np.asarray(self.arrow(part).column(self.target).to_numpy(zero_copy_only=False))

    @property
    def champion(self) -> Any:
        """The model serving now, loaded (a matchday Predictor: ``predict``, ``predict_proba``); None if unknown."""
        if self.champion_artifact is None:
            return None
        if not self._champion:
            import tempfile

            from matchday.registry import Signature, load_packed

            a = self.champion_artifact
            predictor = load_packed(a.flavor, a.data, a.options, Path(tempfile.mkdtemp(prefix="matchday-champion-")))
            predictor.signature = Signature.model_validate(a.signature)
            self._champion.append(predictor)
        return self._champion[0]


# -- gathering a run's data -----------------------------------------------------------------------
def production_part(log_batch: pa.Table, inputs: list[str], target: str, label_type: pa.DataType | None) -> pa.Table:
    """The log's labelled rows (as `PredictionLogStore.labelled_between` reads them) as a part's columns."""
    if not log_batch.num_rows:
        return _empty_part(inputs, target, label_type)
    structs = log_batch.column("inputs").combine_chunks()
    missing = [name for name in inputs if structs.type.get_field_index(name) < 0]
    if missing:
        raise NotEnoughData(f"the logged rows lack the inputs {missing}: they were logged by another signature")
    columns: dict[str, Any] = {name: pc.struct_field(structs, name) for name in inputs}
    labels = [None if text is None else json.loads(text) for text in log_batch.column("label").to_pylist()]
    columns[target] = _typed(labels, label_type)
    if label_type is not None and columns[target].type != label_type:
        examples = sorted({repr(v) for v in labels if v is not None}, key=len)[:3]
        raise NotEnoughData(
            f"the labels in the log ({columns[target].type}, e.g. {', '.join(examples)}) are not of the type of "
            f"the champion's reference labels ({label_type}): the two cannot be trained on together (send labels "
            "of the reference's type, or set data.reference: false in the policy)"
        )
    columns["logged_at"] = log_batch.column("at")
    columns["source"] = log_batch.column("role")
    columns["label_source"] = log_batch.column("label_source")
    columns["log_id"] = log_batch.column("id")
    return pa.table(columns)


def reference_part(table: pa.Table, inputs: list[str], target: str) -> pa.Table:
    n = table.num_rows
    columns: dict[str, Any] = {name: table.column(name) for name in inputs}
    columns[target] = table.column(target)
    columns["logged_at"] = pa.nulls(n, pa.timestamp("us", tz="UTC"))
    columns["source"] = pa.array(["reference"] * n, pa.string())
    columns["label_source"] = pa.array(["reference"] * n, pa.string())
    columns["log_id"] = pa.nulls(n, pa.int64())
    return pa.table(columns)


def split_holdout(production: pa.Table, newest: float, min_rows: int) -> tuple[pa.Table, pa.Table]:
    """(train, holdout): the newest ``newest`` share of the labelled rows by prediction time, held out."""
    n = production.num_rows
    held = int(round(n * newest))
    if held < min_rows:
        raise NotEnoughData(
            f"{n} labelled production rows: a holdout of {newest:.0%} is {held} rows, fewer than the "
            f"{min_rows} needed to judge a candidate (wait for more labels, or lower holdout.min_rows)"
        )
    if n - held < 1:
        raise NotEnoughData(f"{n} labelled production rows leave nothing to train on after the holdout")
    order = pc.sort_indices(production, sort_keys=[("logged_at", "ascending"), ("log_id", "ascending")])
    ordered = production.take(order)
    return ordered.slice(0, n - held), ordered.slice(n - held)


def write_parts(folder: Path, parts: dict[str, pa.Table | None], about: dict[str, Any]) -> dict[str, Any]:
    """Write a run's parts and return its snapshot: counts, row ids, labels by source, sha256 of each file."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    for name, table in parts.items():
        if table is None:
            continue
        path = folder / _FILES[name]
        tmp = path.with_name(f".{path.name}.partial")
        pq.write_table(table, tmp)
        tmp.replace(path)
        files[name] = {"file": path.name, "rows": table.num_rows, "sha256": _sha256(path)}
    production, holdout = parts["production"], parts["holdout"]
    assert production is not None and holdout is not None
    ids = pa.concat_arrays([production.column("log_id").combine_chunks(), holdout.column("log_id").combine_chunks()])
    sources = Counter(production.column("label_source").to_pylist() + holdout.column("label_source").to_pylist())
    snapshot = {
        **about,
        "folder": str(folder),
        "files": files,
        "rows": {name: info["rows"] for name, info in files.items()},
        "log_ids": {"min": pc.min(ids).as_py(), "max": pc.max(ids).as_py(), "count": len(ids)},
        "labels_by_source": {str(k): v for k, v in sorted(sources.items(), key=lambda kv: str(kv[0]))},
        "holdout_from": _first_time(holdout),
    }
    snapshot["sha256"] = hashlib.sha256(
        json.dumps({k: v["sha256"] for k, v in files.items()}, sort_keys=True).encode()
    ).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(snapshot, indent=2, default=str))
    return snapshot


def read_parts(snapshot: dict[str, Any]) -> dict[str, pa.Table] | None:
    """The parts a snapshot names, each checked against its sha256; None if one is gone or changed."""
    folder = Path(snapshot["folder"])
    out: dict[str, pa.Table] = {}
    for name, info in snapshot["files"].items():
        path = folder / info["file"]
        if not path.exists() or _sha256(path) != info["sha256"]:
            return None
        out[name] = pq.read_table(path)
    return out


def stored_parts(snapshot: dict[str, Any]) -> dict[str, pa.Table]:
    """`read_parts`, for a step that cannot go on without them (retried: the folder may be back)."""
    parts = read_parts(snapshot)
    if parts is None:
        raise RuntimeError(f"the run's data in {snapshot['folder']} is gone or changed")
    return parts


def training_data(
    snapshot: dict[str, Any], parts: dict[str, pa.Table], champion: ChampionArtifact | None
) -> TrainingData:
    return TrainingData(
        deployment=snapshot["deployment"],
        target=snapshot["target"],
        inputs=list(snapshot["inputs"]),
        task=snapshot["task"],
        classes=snapshot.get("classes"),
        reference=parts.get("reference"),
        production=parts["production"],
        holdout=parts["holdout"],
        champion_artifact=champion,
    )


def _typed(values: list[Any], label_type: pa.DataType | None) -> pa.Array:
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        kinds = sorted({type(v).__name__ for v in values if v is not None})
        raise NotEnoughData(
            f"the labels in the log mix types ({', '.join(kinds)}): {exc}; every label of a deployment must be "
            "of one type (the champion's)"
        ) from None
    if label_type is not None and array.type != label_type:
        try:
            return array.cast(label_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return array


def _empty_part(inputs: list[str], target: str, label_type: pa.DataType | None) -> pa.Table:
    fields = [pa.field(name, pa.float64()) for name in inputs]
    fields += [
        pa.field(target, label_type or pa.null()),
        pa.field("logged_at", pa.timestamp("us", tz="UTC")),
        pa.field("source", pa.string()),
        pa.field("label_source", pa.string()),
        pa.field("log_id", pa.int64()),
    ]
    return pa.schema(fields).empty_table()


def _first_time(table: pa.Table) -> str | None:
    if not table.num_rows:
        return None
    value = table.column("logged_at")[0].as_py()
    return value.isoformat() if isinstance(value, datetime) else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
