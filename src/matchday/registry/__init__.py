"""The model registry: versions, flavors, artifacts, signatures, reference profiles, aliases."""

from matchday.registry.artifacts import ArtifactStore
from matchday.registry.as_json import model_json, move_json, version_json
from matchday.registry.errors import (
    ArtifactCorrupt,
    ArtifactError,
    ArtifactMissing,
    InvalidInput,
    InvalidModel,
    InvalidModelRef,
    InvalidReference,
    RegistryError,
    UnknownFlavor,
    UntrustedArtifact,
)
from matchday.registry.flavors import FLAVORS, FloatRows, Predictor, load_packed, pack_model
from matchday.registry.refs import ModelRef, PinnedRef, check_name
from matchday.registry.registry import Registry
from matchday.registry.signature import ColumnSpec, OutputSpec, Signature
from matchday.registry.tabular import read_table_file, to_table
from matchday.store import (
    AliasNotFound,
    CategoricalProfile,
    ColumnProfile,
    ModelNotFound,
    NumericProfile,
    ReferenceProfile,
    VersionNotFound,
)

__all__ = [
    "model_json",
    "move_json",
    "version_json",
    "FLAVORS",
    "AliasNotFound",
    "CategoricalProfile",
    "ColumnProfile",
    "ArtifactCorrupt",
    "ArtifactError",
    "ArtifactMissing",
    "ArtifactStore",
    "ColumnSpec",
    "FloatRows",
    "InvalidInput",
    "InvalidModel",
    "InvalidModelRef",
    "InvalidReference",
    "ModelNotFound",
    "ModelRef",
    "NumericProfile",
    "OutputSpec",
    "PinnedRef",
    "Predictor",
    "ReferenceProfile",
    "Registry",
    "RegistryError",
    "Signature",
    "UnknownFlavor",
    "UntrustedArtifact",
    "VersionNotFound",
    "check_name",
    "load_packed",
    "pack_model",
    "read_table_file",
    "to_table",
]
