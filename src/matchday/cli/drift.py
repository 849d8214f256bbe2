"""``matchday drift``: two files compared column by column, as a table, an HTML report and JSON, with an exit
code CI gates can stop on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

import typer

from matchday.cli import render
from matchday.cli.options import FLAG

if TYPE_CHECKING:
    from matchday.monitoring import ColumnTest

DRIFT_EXIT_CODE = 3


class _DriftOptions(TypedDict):
    """What `drift` passes to `compare_parquet_files` or `compare_tables` (the same for both)."""

    columns: list[str] | None
    tests: dict[str, ColumnTest]
    share_threshold: float
    multivariate: bool


def drift(
    reference: Annotated[Path, typer.Argument(help="reference data, CSV or Parquet")],
    current: Annotated[Path, typer.Argument(help="current data, CSV or Parquet")],
    html: Annotated[Path | None, typer.Option("--html", help="write a self-contained HTML report here")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the full result as JSON here")] = None,
    columns: Annotated[str | None, typer.Option(help="comma-separated columns to compare (default: all)")] = None,
    test: Annotated[
        list[str] | None,
        typer.Option(
            "--test",
            help="COLUMN=TEST[:THRESHOLD], TEST one of ks, wasserstein, psi, jensenshannon, chisquare, z, unseen",
        ),
    ] = None,
    share_threshold: Annotated[
        float, typer.Option(help="dataset drift when at least this share of columns drifted")
    ] = 0.5,
    multivariate: Annotated[
        bool, typer.Option("--multivariate", metavar=FLAG, help="also train a domain classifier (ROC AUC)")
    ] = False,
) -> None:
    """Compare two files column by column; exit code 3 when the dataset drifted (for CI gates)."""
    from matchday.monitoring import ColumnTest, DriftError, compare_parquet_files, compare_tables, render_html
    from matchday.registry import read_table_file

    overrides: dict[str, ColumnTest] = {}
    for spec in test or []:
        column, _, rest = spec.partition("=")
        name, _, threshold = rest.partition(":")
        try:
            overrides[column] = ColumnTest(name or None, float(threshold) if threshold else None)  # type: ignore[arg-type]
        except ValueError as exc:
            raise DriftError(f"--test {spec!r}: the threshold must be a number") from exc
        if not column or not name:
            raise DriftError(f"--test {spec!r}: expected COLUMN=TEST[:THRESHOLD]")
    options: _DriftOptions = {
        "columns": columns.split(",") if columns else None,
        "tests": overrides,
        "share_threshold": share_threshold,
        "multivariate": multivariate,
    }
    out = render.out()
    parquet = {".parquet", ".pq"}
    if (
        reference.suffix.lower() in parquet
        and current.suffix.lower() in parquet
        and reference.is_file()
        and current.is_file()
    ):
        with out.status("comparing column by column..."):
            try:
                report = compare_parquet_files(str(reference), str(current), **options)
            except (OSError, ValueError) as exc:  # pyarrow's errors for files that are not Parquet
                raise DriftError(f"could not read {reference.name} or {current.name} as Parquet: {exc}") from exc
    else:
        with out.status("reading..."):
            ref_table, cur_table = read_table_file(reference), read_table_file(current)
        with out.status("comparing..."):
            report = compare_tables(ref_table, cur_table, **options)
    title = f"{reference.name} ({report.reference_rows:,} rows) vs {current.name} ({report.current_rows:,} rows)"
    out.print(render.drift_table(report, title))
    if report.multivariate:
        m = report.multivariate
        out.print(
            f"domain classifier ROC AUC {m['roc_auc']:.3f} (threshold {m['threshold']}): "
            + ("[red]drift[/]" if m["drifted"] else "[green]ok[/]")
        )
    out.print(render.drift_verdict(report))
    if html:
        html.write_text(render_html(report, reference_name=reference.name, current_name=current.name))
        out.print(f"HTML report: {html}")
    if json_out:
        json_out.write_text(json.dumps(_nan_to_none(report.to_dict()), indent=2, default=str, allow_nan=False))
        out.print(f"JSON: {json_out}")
    if report.dataset_drift:
        raise typer.Exit(DRIFT_EXIT_CODE)


def _nan_to_none(value: Any) -> Any:
    """JSON has no NaN or infinity: a statistic that could not be computed is null."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value
