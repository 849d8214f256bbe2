"""Names that end in a newline are refused (a regex ``$`` matches before a final ``\\n``): once stored,
such a name could not be shown, typed or deleted (issue 13)."""

from __future__ import annotations

import pytest

from matchday.registry import RegistryError
from matchday.rollout import RolloutError
from matchday.workspace import Workspace

SIGNATURE = {"inputs": [{"name": "amount", "type": "float"}], "output": {"task": "regression"}}


@pytest.mark.parametrize("name", ["fraud\n", "fraud\r\n", "\nfraud"])
def test_a_name_with_a_newline_is_refused_everywhere(workspace: Workspace, name: str) -> None:
    with pytest.raises(RegistryError, match="invalid model name"):
        workspace.registry.register(name, "support.flavor_callables:regress", signature=SIGNATURE)
    version = workspace.registry.register("fraud", "support.flavor_callables:regress", signature=SIGNATURE)
    with pytest.raises(RegistryError, match="invalid alias"):
        workspace.registry.set_alias("fraud", version.version, name.replace("fraud", "prod"))
    with pytest.raises(RolloutError, match="invalid deployment name"):
        workspace.deployments.deploy(name, "fraud:1")
    assert [m.name for m in workspace.registry.list_models()] == ["fraud"]
    assert workspace.deployments.list() == []
