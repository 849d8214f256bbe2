"""A registered version as an ONNX graph: skl2onnx for scikit-learn models, ONNX models as they are.

scikit-learn models are tried in the order of the input layouts a device feeds fastest and most
exactly (`candidates`), and the first that converts, loads and passes the parity gate wins:

1. all-numeric inputs: one 2-D ``double`` tensor named ``input``, columns in the signature's order
   (the device builds one array per call; float64 as scikit-learn computes);
2. the same in ``float`` (tree ensembles: their ONNX operators take float32, and scikit-learn's trees
   compare float32 thresholds too, so nothing is lost);
3. one tensor per column, named after it (``double``/``float`` numbers, ``string`` text): what a
   pipeline that selects columns by name (a ``ColumnTransformer``) needs.

Probabilities come out as a plain tensor (skl2onnx's ZipMap is turned off). HistGradientBoosting models
convert through skl2onnx's own converters with one mend (`_hist_gradient_boosting_mend`), and only in the
``float`` layouts (their ONNX operators answer float32).
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from matchday.edge.errors import ExportError
from matchday.registry import Signature
from matchday_edge import InputSpec, Outputs, TensorType

Layout = Literal["matrix", "columns"]
MATRIX_INPUT = "input"
INSTALL_HINT = "pip install 'matchday[onnx-export]'"
_ORT_TENSOR: dict[str, TensorType] = {
    "tensor(double)": "double",
    "tensor(float)": "float",
    "tensor(int64)": "int64",
    "tensor(string)": "string",
}


@dataclass(frozen=True)
class Converted:
    """An ONNX graph and how a device feeds it."""

    model_bytes: bytes
    layout: Layout
    matrix_input: str | None
    inputs: list[InputSpec]
    outputs: Outputs
    converter: str


def onnx_as_is(model_bytes: bytes, signature: Signature, has_proba: bool) -> Converted:
    """A registered ONNX model, described for the device from its own inputs and outputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    onnx_inputs = session.get_inputs()
    names = signature.input_names
    outputs = _outputs(session, has_proba)
    if (
        len(onnx_inputs) == 1
        and len(onnx_inputs[0].shape) == 2
        and not (len(names) == 1 and onnx_inputs[0].name == names[0])
    ):
        tensor = _tensor_type(onnx_inputs[0].type, onnx_inputs[0].name)
        specs: list[InputSpec] = [{"name": c.name, "type": c.type, "tensor": tensor} for c in signature.inputs]
        return Converted(model_bytes, "matrix", onnx_inputs[0].name, specs, outputs, "onnx (as registered)")
    by_name = {i.name: i for i in onnx_inputs}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ExportError(
            "the ONNX model's inputs are neither one 2-D tensor nor one tensor per signature column",
            [f"no ONNX input named {n!r}" for n in missing],
        )
    specs = [
        {"name": c.name, "type": c.type, "tensor": _tensor_type(by_name[c.name].type, c.name)} for c in signature.inputs
    ]
    return Converted(model_bytes, "columns", None, specs, outputs, "onnx (as registered)")


def sklearn_candidates(model: Any, signature: Signature, has_proba: bool) -> Iterator[Converted | ExportError]:
    """Each layout in the module docstring's order, converted (or the error that converting it raised)."""
    try:
        import skl2onnx
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    except ImportError as exc:
        raise ExportError(
            f"converting a scikit-learn model to ONNX needs skl2onnx and onnx ({exc.name} is not installed): {INSTALL_HINT}"
        ) from exc
    numeric = all(c.type != "string" for c in signature.inputs)
    tensor_types = {"double": DoubleTensorType, "float": FloatTensorType}
    plans: list[tuple[Layout, TensorType]] = [("matrix", "double"), ("matrix", "float")] if numeric else []
    plans += [("columns", "double"), ("columns", "float")]
    options = {id(model): {"zipmap": False}} if hasattr(model, "classes_") else None
    converter = f"skl2onnx {skl2onnx.__version__}"
    for layout, number in plans:
        specs: list[InputSpec] = [
            {"name": c.name, "type": c.type, "tensor": "string" if c.type == "string" else number}
            for c in signature.inputs
        ]
        if layout == "matrix":
            initial = [(MATRIX_INPUT, tensor_types[number]([None, len(specs)]))]
        else:
            initial = [
                (s["name"], StringTensorType([None, 1]) if s["tensor"] == "string" else tensor_types[number]([None, 1]))
                for s in specs
            ]
        try:
            graph = convert_sklearn(
                model,
                initial_types=initial,
                options=options,
                custom_conversion_functions=_hist_gradient_boosting_mend(),
            )
            if layout == "columns":
                _name_inputs(graph, [s["name"] for s in specs])
            model_bytes = graph.SerializeToString()
            outputs = _outputs(_session(model_bytes), has_proba)
        except Exception as exc:  # skl2onnx and onnxruntime raise many kinds; each is this layout's failure
            yield ExportError(_conversion_failure(exc, model, layout, number))
            continue
        yield Converted(model_bytes, layout, MATRIX_INPUT if layout == "matrix" else None, specs, outputs, converter)


class _IntFlags:
    """A converter's container whose ``add_node`` writes boolean list items as the integers ONNX holds them."""

    def __init__(self, container: Any) -> None:
        object.__setattr__(self, "_container", container)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._container, name, value)

    def add_node(self, *args: Any, **attributes: Any) -> Any:
        mended = {
            key: [int(v) if isinstance(v, bool | np.bool_) else v for v in value] if isinstance(value, list) else value
            for key, value in attributes.items()
        }
        return self._container.add_node(*args, **mended)


def _hist_gradient_boosting_mend() -> dict[type, Any]:
    """skl2onnx's HistGradientBoosting converters, each given a container that writes booleans as integers.

    skl2onnx (1.20) writes a leaf's ``nodes_missing_value_tracks_true`` as Python ``False`` beside the
    branches' ``uint8`` flags; onnx 1.23's attribute builder refuses a boolean among integers ("Unable to
    create node 'TreeEnsembleClassifier' ... Expected an int, got a boolean"). The same values as integers
    are what ONNX means (the flags route missing values as scikit-learn learned them). Passed per call, so
    nothing is registered for the process; {} when skl2onnx's registry is not where it was (the plain error)."""
    try:
        from skl2onnx import get_model_alias
        from skl2onnx.common._registration import get_converter
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    except ImportError:
        return {}

    def mended(kind: type) -> Any:
        original = get_converter(get_model_alias(kind))
        return lambda scope, operator, container: original(scope, operator, _IntFlags(container))

    try:
        return {kind: mended(kind) for kind in (HistGradientBoostingClassifier, HistGradientBoostingRegressor)}
    except (KeyError, ValueError, RuntimeError):
        return {}


def _session(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _outputs(session: Any, has_proba: bool) -> Outputs:
    outputs = session.get_outputs()
    proba = None
    if has_proba:
        proba = next(
            (o.name for o in outputs[1:] if "prob" in o.name.lower() or o.type.startswith("seq(map")),
            outputs[1].name if len(outputs) > 1 else None,
        )
    return {"label": outputs[0].name, "probabilities": proba}


def _name_inputs(graph: Any, names: list[str]) -> None:
    """Give the graph's inputs the columns' own names: skl2onnx renames the ones it finds unfit (``mean radius``
    becomes ``mean_radius``), and a device feeds each column by its name."""
    for onnx_input, name in zip(graph.graph.input, names, strict=True):
        if onnx_input.name != name:
            old, onnx_input.name = onnx_input.name, name
            for node in graph.graph.node:
                node.input[:] = [name if used == old else used for used in node.input]


def _tensor_type(ort_type: str, name: str) -> TensorType:
    if ort_type not in _ORT_TENSOR:
        raise ExportError(
            f"the ONNX input {name!r} takes {ort_type}; a device feeds double, float, int64 or string tensors"
        )
    return _ORT_TENSOR[ort_type]


def _conversion_failure(exc: BaseException, model: Any, layout: str, number: str) -> str:
    step = _failing_step(exc) or _describe(model)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    first = first if len(first) <= 160 else first[:160] + "..."
    return f"skl2onnx cannot convert {step} ({layout} of {number}): {type(exc).__name__}: {first}"


def _failing_step(exc: BaseException) -> str | None:
    """The estimator skl2onnx was converting when it failed: the innermost frame holding an ``operator``
    with its scikit-learn object (``raw_operator``), or the type named by a missing converter."""
    found = None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        operator = tb.tb_frame.f_locals.get("operator")
        raw = getattr(operator, "raw_operator", None)
        if raw is not None:
            found = type(raw).__name__
        tb = tb.tb_next
    if found:
        return found
    text = str(exc)
    if "for type '<class '" in text:
        return text.split("for type '<class '", 1)[1].split("'", 1)[0].rsplit(".", 1)[-1]
    return None


def _describe(model: Any) -> str:
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        return f"{type(model).__name__}({', '.join(type(s).__name__ for _, s in steps)})"
    return type(model).__name__
