"""The bundle's manifest: what the server writes (`matchday.edge.export`) and the device reads.

One definition of the contract for both sides, so they cannot drift apart. A bundle is a folder:

- ``model.onnx``: the model, converted and checked against the registered one (the parity gate);
- ``manifest.json``: this structure, as UTF-8 JSON;
- ``manifest.sig``: the Ed25519 signature (64 raw bytes) of ``manifest.json``'s exact bytes.

The manifest names the sha256 of every other file, so the one signature covers the whole bundle.
"""

from __future__ import annotations

from typing import Literal, TypedDict

FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"

ColumnType = Literal["integer", "float", "boolean", "string"]  # the registry signature's types
TensorType = Literal["double", "float", "int64", "string"]  # what the ONNX graph's input takes


class InputSpec(TypedDict):
    """One input column, in the order the model takes them."""

    name: str
    type: ColumnType
    tensor: TensorType


class FileEntry(TypedDict):
    sha256: str
    bytes: int


class Outputs(TypedDict):
    """The ONNX graph's output names: labels (or a regressor's values), and probabilities when it has them."""

    label: str
    probabilities: str | None


class NumericSketch(TypedDict):
    """A numeric feature of the reference rows: quantile bin edges, and the share of rows in each of the
    ``len(edges) + 1`` bins (bin i holds edges[i-1] <= x < edges[i]), and the share that was missing."""

    kind: Literal["numeric"]
    edges: list[float]
    frequencies: list[float]
    missing: float


class CategoricalSketch(TypedDict):
    """A string feature of the reference rows: the share of each of its most frequent values, and of the rest."""

    kind: Literal["categorical"]
    categories: list[str]
    frequencies: list[float]
    other: float


class ReferenceSketches(TypedDict):
    rows: int
    features: dict[str, NumericSketch | CategoricalSketch]


class Parity(TypedDict):
    """What the parity gate found on the reference rows when the bundle was exported."""

    rows: int
    tolerance: float
    labels_equal: bool
    max_abs_difference: float


class Manifest(TypedDict):
    format: int
    name: str
    version: int
    deployment: str
    task: Literal["classification", "regression"]
    classes: list[str | int | bool] | None
    layout: Literal["matrix", "columns"]  # one 2-D tensor of every column in order, or one tensor per column
    matrix_input: str | None  # the 2-D tensor's name (layout "matrix")
    inputs: list[InputSpec]
    outputs: Outputs
    files: dict[str, FileEntry]
    parity: Parity
    reference: ReferenceSketches | None
    exported_at: str
    matchday_version: str
    converter: str
