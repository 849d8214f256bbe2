"""`PinnedRef`: a version by number, read back from the text stored today with its version an int."""

from __future__ import annotations

import pytest

from matchday.registry import InvalidModelRef, ModelRef, PinnedRef


@pytest.mark.parametrize("text", ["fraud:3", "demo-fraud:12", "a.b_c-d:2147483647"])
def test_a_pinned_ref_reads_and_writes_the_stored_text(text: str) -> None:
    pinned = PinnedRef.parse(text)
    assert isinstance(pinned.version, int)
    assert str(pinned) == text
    assert PinnedRef.parse(str(pinned)) == pinned


def test_a_pinned_ref_is_the_version_a_model_ref_names() -> None:
    pinned = PinnedRef.parse(" fraud:3 ")
    assert (pinned.name, pinned.version) == ("fraud", 3)
    model_ref = ModelRef.parse("fraud:3")
    assert (model_ref.name, model_ref.version) == (pinned.name, pinned.version)


@pytest.mark.parametrize(
    "text", ["fraud", "fraud:latest", "fraud@champion", "fraud:0", "fraud:x", "fraud:2147483648", ":3"]
)
def test_only_name_and_number_is_pinned(text: str) -> None:
    with pytest.raises(InvalidModelRef, match="NAME:VERSION"):
        PinnedRef.parse(text)


@pytest.mark.parametrize(
    ("name", "version"), [("fraud", 0), ("fraud", True), ("fraud", "3"), ("bad name", 1), ("a:b", 1)]
)
def test_a_pinned_ref_built_from_parts_is_held_to_the_same_rules(name: str, version: object) -> None:
    with pytest.raises(InvalidModelRef):
        PinnedRef(name, version)  # type: ignore[arg-type]


def test_the_registry_pins_aliases_and_latest(registry, cancer, cancer_pipeline) -> None:  # type: ignore[no-untyped-def]
    X, _ = cancer
    registry.register("a", cancer_pipeline, reference=X)
    registry.register("a", cancer_pipeline, reference=X, alias="champion")
    registry.set_alias("a", 1, "champion")
    assert registry.pin("a") == PinnedRef("a", 2)
    assert registry.pin("a@champion") == PinnedRef("a", 1)
    assert registry.pin(PinnedRef("a", 2)) == PinnedRef("a", 2)
    assert registry.get_version(PinnedRef("a", 1)).ref == "a:1"
