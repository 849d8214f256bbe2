"""``matchday edge devices``: the devices that send a deployment their telemetry. Each has its own
predictor token, scoped to the deployment and bound to the device (printed once, at ``add``). They work
on the store directly, as the machine's own administrator; the audit trail names ``cli:<os user>``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from matchday.cli.context import default_workspace, local_actor
from matchday.cli.options import JsonFlag
from matchday.cli.render import Col, FittingTable

devices_app = typer.Typer(
    help="Edge devices: register one to a deployment (its token printed once), list them, remove one.",
    no_args_is_help=True,
)


def err() -> Console:
    return Console(stderr=True, highlight=False)


@devices_app.command("add")
def devices_add(
    device: Annotated[str, typer.Argument(help="the device's name (letters, digits, '_', '.', '-')")],
    deployment: Annotated[str, typer.Option("--deployment", help="the deployment whose monitors watch the device")],
    expires: Annotated[str, typer.Option(help="the token's life: 12h, 90d, 2w, or never")] = "never",
    server: Annotated[
        str, typer.Option("--server", help="the server's address as the device reaches it (for the sync URL)")
    ] = "http://127.0.0.1:8000",
) -> None:
    """Register DEVICE to a deployment with a predictor token of its own; the token is printed once, here."""
    from matchday.edge import TELEMETRY_PATH

    token, record = default_workspace().edge_telemetry.register(device, deployment, local_actor(), expires=expires)
    url = server.rstrip("/") + TELEMETRY_PATH.format(device=device)
    err().print(
        f"edge device [bold]{escape(record.device)}[/] registered to {escape(record.deployment)} "
        f"with token {record.token_key}; it syncs to {escape(url)}. "
        "The token is shown once: store it on the device now."
    )
    print(token)  # alone on standard output, for `TOKEN=$(matchday edge devices add ...)`


@devices_app.command("list")
def devices_list(
    deployment: Annotated[str | None, typer.Option("--deployment", help="only this deployment's devices")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Every registered device: its deployment, token key, last sync and what it has sent."""
    from matchday.edge import device_json

    found = default_workspace().edge_telemetry.registered(deployment)
    if as_json:
        typer.echo(json.dumps({"devices": [device_json(d) for d in found]}, indent=2))
        return
    table = FittingTable(
        Col("device", key=True),
        "deployment",
        "token key",
        Col("last sync (UTC)", wrap=True),
        Col("bundle", wrap=True),
        "rows",
        "labels",
        Col("by", fold=1),
    )
    for d in found:
        table.add_row(
            escape(d.device),
            escape(d.deployment),
            d.token_key,
            f"{d.last_sync_at:%Y-%m-%d %H:%M:%S}" if d.last_sync_at else "never",
            escape(d.last_model_ref or "-"),
            f"{d.rows_received:,}",
            f"{d.labels_received:,}",
            escape(d.created_by),
        )
    Console().print(table)


@devices_app.command("remove")
def devices_remove(device: Annotated[str, typer.Argument(help="the device's name")]) -> None:
    """Remove DEVICE and revoke its token (its rows already logged stay)."""
    record = default_workspace().edge_telemetry.remove(device, local_actor())
    err().print(f"edge device [bold]{escape(record.device)}[/] removed; its token {record.token_key} is revoked")
