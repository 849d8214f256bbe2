"""MLflow model directories (anything with an ``MLmodel`` file), loaded as pyfunc.

Needs the optional extra ``matchday[mlflow]``. The directory is stored as one deterministic tar,
unpacked into a cache keyed by its sha256 when loaded.

Loading a pyfunc model runs code by design: a ``python_model`` is cloudpickled, most flavors'
models are pickled or joblib-dumped, and ``code_paths`` are put on ``sys.path`` and imported. So an
MLflow directory is registered only with ``trust_pickle=True`` (``--trust-pickle``), recorded in the
options as ``"trusted_by": "user"``, and a version without that record is refused at load too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from matchday.registry.artifacts import pack_directory, unpack_directory
from matchday.registry.errors import InvalidModel, UntrustedArtifact
from matchday.registry.flavors.base import Flavor, Packed, Predictor, as_pandas

_RUNS_CODE = (
    "loading an MLflow model runs code it contains (mlflow.pyfunc unpickles the model with "
    "pickle/cloudpickle and imports its code_paths)"
)


def _pyfunc() -> Any:
    try:
        import mlflow.pyfunc
    except ImportError as exc:
        raise InvalidModel("MLflow models need the mlflow extra: pip install 'matchday[mlflow]'") from exc
    return mlflow.pyfunc


class MlflowPredictor(Predictor):
    flavor = "mlflow"
    accepts_float_rows = True  # it reads its input through as_pandas / as_matrix

    def __init__(self, path: Path) -> None:
        super().__init__()
        try:
            self.model = _pyfunc().load_model(str(path))
        except InvalidModel:
            raise
        except Exception as exc:
            raise InvalidModel(f"MLflow could not load the model at {path}: {exc}") from exc
        try:
            self.raw = self.model.get_raw_model()
        except Exception:  # not every pyfunc exposes its underlying model
            self.raw = None

    @property
    def has_proba(self) -> bool:
        return hasattr(self.raw, "predict_proba")

    def _native_classes(self) -> list[Any] | None:
        classes = getattr(self.raw, "classes_", None)
        return None if classes is None else list(classes)

    def declared_inputs(self) -> list[str] | int | None:
        schema = self.model.metadata.get_input_schema()
        if schema is None or not schema.has_input_names():
            return None
        return list(schema.input_names())

    def _predict(self, table: pa.Table) -> Any:
        out = self.model.predict(as_pandas(table))
        return out.to_numpy().ravel() if hasattr(out, "to_numpy") else out

    def _predict_proba(self, table: pa.Table) -> Any:
        return self.raw.predict_proba(as_pandas(table))


class MlflowFlavor(Flavor):
    name = "mlflow"

    def pack(self, model: Any, *, trust_pickle: bool = False) -> Packed | None:
        if not isinstance(model, (str, Path)):
            return None
        path = Path(model)
        if not (path.is_dir() and (path / "MLmodel").is_file()):
            return None
        if not trust_pickle:
            raise UntrustedArtifact(
                f"{path} is an MLflow model directory: {_RUNS_CODE}. Register it with trust_pickle=True "
                "(--trust-pickle) only if you trust its source"
            )
        return Packed("mlflow", pack_directory(path), MlflowPredictor(path), {"trusted_by": "user"})

    def load(self, data: bytes, options: dict[str, Any], cache_dir: Path) -> Predictor:
        from matchday.registry.artifacts import sha256_bytes

        if options.get("trusted_by") != "user":
            raise UntrustedArtifact(
                f"this MLflow version's options record no trust flag, and {_RUNS_CODE}. "
                "Re-register it with --trust-pickle if you trust its source"
            )

        target = cache_dir / "mlflow" / sha256_bytes(data)
        if not (target / "MLmodel").is_file():
            unpack_directory(data, target)
        return MlflowPredictor(target)
