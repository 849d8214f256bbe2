"""``matchday models``: register, inspect, alias, verify and delete model versions (the registry's verbs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from matchday.cli import render
from matchday.cli.context import default_workspace
from matchday.cli.options import FLAG, JsonFlag

models_app = typer.Typer(help="Register, inspect, alias and delete model versions.", no_args_is_help=True)


@models_app.command("register")
def models_register(
    name: str,
    path: Annotated[
        str, typer.Argument(help="a .skops/.onnx/.pkl/.joblib file, an MLflow model directory, or module:function")
    ],
    reference: Annotated[Path | None, typer.Option(help="reference data, CSV or Parquet")] = None,
    target: Annotated[
        str | None, typer.Option(help="label column in the reference data (profiled, not an input)")
    ] = None,
    flavor: Annotated[str | None, typer.Option(help="force a flavor instead of detecting it")] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            metavar=FLAG,
            help="allow a model that can run code or crash when loaded: pickle/joblib, MLflow directories, skops types outside matchday's reviewed list",
        ),
    ] = False,
    proba: Annotated[str | None, typer.Option(help="module:function giving probabilities, for callables")] = None,
    alias: Annotated[str | None, typer.Option(help="point this alias at the new version")] = None,
    description: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Register a new version of NAME from PATH."""
    out = render.out()
    with out.status(f"registering {name}..."):
        record = default_workspace().registry.register(
            name,
            path,
            reference=reference,
            target=target,
            flavor=flavor,
            trust_pickle=trust_pickle,
            proba=proba,
            alias=alias,
            description=description,
        )
    out.print(
        f"registered [bold]{record.ref}[/] ({record.flavor}, sha256 {record.artifact_sha256[:12]}, "
        f"{len(record.signature['inputs'])} inputs, {record.signature['output']['task']})"
        + (f" as @{alias}" if alias else "")
    )


@models_app.command("list")
def models_list(as_json: JsonFlag = False) -> None:
    """Every registered model with its latest version and aliases."""
    models = default_workspace().registry.list_models()
    out = render.out()
    if as_json:
        out.print_json(
            data=[
                {
                    "name": m.name,
                    "latest_version": m.latest_version,
                    "aliases": m.aliases,
                    "created_at": m.created_at.isoformat(),
                }
                for m in models
            ]
        )
        return
    out.print(
        render.models_table(models)
        if models
        else "no models registered yet: try `matchday models register NAME PATH --reference data.parquet`"
    )


@models_app.command("show")
def models_show(ref: str, as_json: JsonFlag = False) -> None:
    """A model's versions and alias history (NAME), or one version in detail (NAME:VERSION, NAME@ALIAS)."""
    registry = default_workspace().registry
    from matchday.registry import ModelRef, move_json, version_json

    out = render.out()
    parsed = ModelRef.parse(ref)
    if parsed.version is None and parsed.alias is None:
        versions = registry.list_versions(parsed.name)
        history = registry.alias_history(parsed.name)
        if as_json:
            out.print_json(
                data={
                    "name": parsed.name,
                    "versions": [version_json(v) for v in versions],
                    "alias_history": [move_json(m) for m in history],
                }
            )
        else:
            out.print(render.model_versions(parsed.name, versions, history))
        return
    record = registry.get_version(parsed)
    profile = registry.get_profile(parsed)
    chain = [_lineage_link(v) for v in registry.lineage_chain(record.ref)] if record.lineage else []
    if as_json:
        out.print_json(
            data={**version_json(record), "signature": record.signature, "profile": profile, "lineage_chain": chain}
        )
    else:
        out.print(render.version_detail(record, profile, chain))


def _lineage_link(version: Any) -> dict[str, Any]:
    """One version of a lineage chain: where it came from (its parent, the run and what triggered it), how it
    did against its parent (the evaluation's gain) and the rollout it went through; an original version has
    none of these."""
    from matchday.retrain import trigger_text

    lineage = version.lineage or {}
    evaluation = lineage.get("evaluation") or {}
    trigger = lineage.get("trigger")
    return {
        "ref": version.ref,
        "parent": lineage.get("parent"),
        "run": lineage.get("run"),
        "trigger": trigger_text(trigger) if isinstance(trigger, dict) else None,
        "gain": evaluation.get("gain"),
        "accepted": evaluation.get("accepted"),
        "rollout": lineage.get("rollout"),
        "created_at": version.created_at.isoformat(),
    }


@models_app.command("alias")
def models_alias(
    name: str,
    version: int,
    alias: str,
    reason: Annotated[str | None, typer.Option(help="recorded in the alias history")] = None,
) -> None:
    """Point ALIAS of NAME at VERSION (the move is recorded)."""
    move = default_workspace().registry.set_alias(name, version, alias, reason or "set from the command line")
    previous = f"(was {move.from_version})" if move.from_version else "(new)"
    render.out().print(f"{name}@{alias} → version {move.to_version} {previous}")


@models_app.command("verify")
def models_verify(ref: str) -> None:
    """Check a version's artifact against its recorded sha256 and load it."""
    predictor = default_workspace().registry.load(ref)
    render.out().print(f"{predictor.ref}: artifact intact (sha256 matches), loads as {predictor.flavor}")


@models_app.command("delete")
def models_delete(
    ref: Annotated[str, typer.Argument(help="NAME (every version) or NAME:VERSION")],
    yes: Annotated[bool, typer.Option("--yes", "-y", metavar=FLAG, help="do not ask for confirmation")] = False,
) -> None:
    """Delete a version or a whole model; artifacts no other version uses are removed."""
    registry = default_workspace().registry
    from matchday.registry import ModelRef

    parsed = ModelRef.parse(ref)
    what = (
        f"version {parsed.version} of {parsed.name}" if parsed.version else f"model {parsed.name} and all its versions"
    )
    if parsed.alias is None:
        registry.get_version(parsed) if parsed.version else registry.store.get_model(parsed.name)
    if not yes and not typer.confirm(f"delete {what}?"):
        raise typer.Exit(1)
    removed = registry.delete(ref, reason="deleted from the command line")
    render.out().print(f"deleted {', '.join(v.ref for v in removed) or parsed.name}")
