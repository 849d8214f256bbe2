"""``matchday edge``: export a version as a signed bundle for devices, print the key devices pin, and
(``matchday edge devices``) the devices that sync their telemetry home."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from matchday.cli.context import default_workspace
from matchday.cli.edge_devices import devices_app

edge_app = typer.Typer(
    help="Edge deployment: signed ONNX bundles for devices (matchday_edge), and the devices that sync home.",
    no_args_is_help=True,
)
edge_app.add_typer(devices_app, name="devices")


def out() -> Console:
    """Built per command: it sees the streams and terminal width of the call."""
    return Console(highlight=False, soft_wrap=True)


@edge_app.command("export")
def edge_export(
    model_ref: Annotated[str, typer.Argument(help="NAME:VERSION, NAME@ALIAS or NAME (the latest version)")],
    bundle_dir: Annotated[Path, typer.Argument(help="the folder to write the bundle to (new, empty, or a bundle)")],
    deployment: Annotated[
        str | None,
        typer.Option(
            help="the deployment whose monitors watch the devices (default: the one serving the version, if only one)"
        ),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(min=0.0, help="the parity gate's largest absolute difference in probabilities")
    ] = 1e-4,
) -> None:
    """Convert MODEL_REF to ONNX, check it answers like the registered model on its reference rows (the
    parity gate), and write a signed bundle that `matchday_edge.EdgeModel.load` verifies."""
    from matchday.edge import default_deployment, export_bundle

    ws = default_workspace()
    console = out()
    if deployment is None:
        deployment = default_deployment(ws.deployments, ws.registry, model_ref)
    else:
        ws.deployments.get(deployment)  # an unknown name fails here, not on the devices' first sync
    with console.status(f"exporting {escape(model_ref)}..."):
        exported = export_bundle(
            ws.registry, model_ref, bundle_dir, signer=ws.edge_signer, deployment=deployment, tolerance=tolerance
        )
    manifest, parity = exported.manifest, exported.manifest["parity"]
    console.print(
        f"exported [bold]{manifest['name']}:{manifest['version']}[/] for deployment [bold]{escape(deployment)}[/] "
        f"to {escape(str(exported.path))}"
    )
    tensor = manifest["inputs"][0]["tensor"] if manifest["inputs"] else "-"
    console.print(
        f"  model.onnx: {manifest['files']['model.onnx']['bytes']:,} bytes, {len(manifest['inputs'])} inputs "
        f"({manifest['layout']} of {tensor}), {manifest['converter']}"
    )
    console.print(
        f"  parity gate: {parity['rows']} reference rows, labels identical, "
        f"largest difference {parity['max_abs_difference']:.2g} (tolerance {parity['tolerance']:g})"
    )
    for reason in exported.tried:
        console.print(f"  [dim]tried first: {escape(reason)}[/]")
    console.print(f"  signed with Ed25519; pin on devices: {exported.public_key}")


@edge_app.command("public-key")
def edge_public_key() -> None:
    """Print the public key that signs this server's bundles (64 hex digits): pin it on devices
    (`EdgeModel.load(..., public_key=...)`). The key pair is made on first use."""
    typer.echo(default_workspace().edge_signer.public_key_hex)
