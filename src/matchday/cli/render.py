"""How the command line prints, and the tables its commands share with the demo.

Consoles are built per call, so each sees the streams and terminal width of the command that prints.
`FittingTable` keeps a table readable in a narrow terminal: it leaves out the columns marked as the first
to go (and says so), then continues the widest tables below themselves with their key columns repeated,
so no header or value is cut to ``versi…``.

This module imports no part of matchday (the layer table in docs/design.md holds it to that): the views
take the parts' records as they are, and `import matchday.cli.render` imports no command.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.errors import MarkupError
from rich.markup import escape
from rich.table import Table
from rich.text import Text

WRAP_FLOOR = 12  # a wrapping column is never made narrower than this (or its longest header word)
COLUMN_OVERHEAD = 3  # a space each side of the cell and the rule on its left
TABLE_EDGE = 1  # the rule on the table's right


def out() -> Console:
    """Standard output, built per command: it sees the streams and terminal width of the call."""
    return Console()


def err() -> Console:
    return Console(stderr=True)


def print_json(value: Any) -> None:
    """``--json``: indented, times as ISO text, alone on standard output for `jq`."""
    print(json.dumps(value, indent=2, default=str, ensure_ascii=False))


@dataclass(frozen=True)
class Col:
    """A column and how it gives way when the terminal is narrow.

    ``wrap``: free text (reasons, messages, lists) that may run over lines; other cells keep to one line.
    ``fold``: 0 is always shown; 1, 2... are left out when the table would not fit, the highest first.
    ``key``: repeated in each part of a table too wide to show at once (the row's time, its name).
    """

    header: str
    wrap: bool = False
    fold: int = 0
    key: bool = False


class FittingTable:
    """A Rich table of text cells that fits the width it is printed at (see the module's docstring)."""

    def __init__(self, *columns: Col | str, title: str | None = None) -> None:
        self.columns = [c if isinstance(c, Col) else Col(c) for c in columns]
        self.title = title
        self.rows: list[tuple[str, ...]] = []

    def add_row(self, *cells: str) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        sizes = {i: self._size(i) for i in range(len(self.columns))}
        shown = list(range(len(self.columns)))
        while _width_of(shown, sizes, minimum=True) > width and any(self.columns[i].fold for i in shown):
            shown.remove(max((i for i in shown if self.columns[i].fold), key=lambda i: (self.columns[i].fold, i)))
        left_out = [self.columns[i].header for i in range(len(self.columns)) if i not in shown]
        caption = f"not shown at {width} columns: {', '.join(left_out)}" if left_out else None
        parts = self._parts(shown, sizes, width)
        for n, part in enumerate(parts):
            yield self._table(
                part,
                sizes,
                width,
                title=self.title if n == 0 else None,
                caption=caption if n == len(parts) - 1 else None,
            )

    def _size(self, index: int) -> tuple[int, int]:
        """The column's (natural, minimum) width: its widest line, and how narrow it may go."""
        column = self.columns[index]
        texts = [column.header, *(_plain(row[index]) for row in self.rows)]
        natural = max(cell_len(line) for text in texts for line in text.splitlines() or [""])
        if not column.wrap:
            return natural, natural
        header_word = max((cell_len(w) for w in column.header.split()), default=0)
        cell_word = max((cell_len(w) for text in texts[1:] for w in text.split()), default=0)
        return natural, min(natural, max(header_word, min(cell_word, WRAP_FLOOR)))

    def _parts(self, shown: list[int], sizes: dict[int, tuple[int, int]], width: int) -> list[list[int]]:
        """The shown columns in one table, or, when even their narrowest is too wide, in several that each
        repeat the key columns."""
        keys = [i for i in shown if self.columns[i].key]
        rest = [i for i in shown if not self.columns[i].key]
        if _width_of(shown, sizes, minimum=True) <= width or not keys or not rest:
            return [shown]
        parts: list[list[int]] = []
        current: list[int] = []
        for i in rest:
            if current and _width_of([*keys, *current, i], sizes, minimum=True) > width:
                parts.append(sorted([*keys, *current]))
                current = []
            current.append(i)
        return [*parts, sorted([*keys, *current])]

    def _table(
        self,
        part: list[int],
        sizes: dict[int, tuple[int, int]],
        width: int,
        title: str | None,
        caption: str | None,
    ) -> Table:
        widths: dict[int, int] = {}
        if _width_of(part, sizes, minimum=False) > width >= _width_of(part, sizes, minimum=True):
            # too wide as it is, narrow enough wrapped: what the others leave goes first to the wrapping
            # columns nearest their whole width, so as few as possible wrap
            spare = width - _width_of(part, sizes, minimum=True)
            for i in sorted(part, key=lambda i: sizes[i][0] - sizes[i][1]):
                natural, minimum = sizes[i]
                widths[i] = minimum + min(spare, natural - minimum)
                spare -= widths[i] - minimum
        table = Table(title=title, caption=caption)
        for i in part:
            column = self.columns[i]
            table.add_column(
                column.header,
                no_wrap=not column.wrap,
                overflow="fold" if column.wrap else "ellipsis",
                width=widths.get(i),
            )
        for row in self.rows:
            table.add_row(*(row[i] for i in part))
        return table


def _width_of(columns: Sequence[int], sizes: dict[int, tuple[int, int]], *, minimum: bool) -> int:
    return sum(sizes[i][1 if minimum else 0] + COLUMN_OVERHEAD for i in columns) + TABLE_EDGE


def _plain(cell: str) -> str:
    """The text a cell shows (its markup taken out), for measuring."""
    try:
        return Text.from_markup(cell).plain
    except MarkupError:
        return cell


# -- numbers ----------------------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def ms(value: float | None) -> str:
    """Seconds as milliseconds."""
    return "-" if value is None else f"{value * 1000:.1f}"


def num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def metric_text(name: str, value: Any) -> str:
    """A monitoring metric's value as the tables show it: counts whole, latencies in ms, the rest to 3 places."""
    if value is None:
        return "-"
    if name in ("rows", "requests", "labelled", "drifted_features"):
        return f"{value:,.0f}"
    if name.startswith("latency"):
        return f"{value * 1000:.1f} ms"
    return f"{value:.3f}"


def short_list(values: list[Any] | None, limit: int = 6) -> str:
    if values is None:
        return "-"
    text = ", ".join(map(str, values[:limit]))
    return text + (f", … ({len(values)})" if len(values) > limit else "")


# -- the registry -----------------------------------------------------------------------------------


def drift_table(report: Any, title: str) -> FittingTable:
    """`matchday drift`: one row a column of a drift report (`monitoring.compare_tables` or
    `compare_to_profile`): its test, statistic, p-value where the test has one, and the verdict."""
    table = FittingTable(
        Col("column", wrap=True, key=True),
        Col("type", fold=2),
        "test",
        "statistic",
        "p-value",
        "threshold",
        "drift",
        Col("missing", fold=1),
        title=title,
    )
    for c in report.columns.values():
        table.add_row(
            escape(c.column),
            c.kind,
            c.test,
            f"{c.statistic:.4g}",
            "" if c.p_value is None else f"{c.p_value:.3g}",
            f"{c.threshold:g}",
            "[red]drift[/]" if c.drifted else "[green]ok[/]",
            f"{c.missing_share:.1%}",
        )
    return table


def drift_verdict(report: Any) -> str:
    """The report's dataset verdict in a line: how many columns drifted, against the share that makes drift."""
    verdict = "[red]dataset drift[/]" if report.dataset_drift else "[green]no dataset drift[/]"
    return (
        f"{verdict}: {len(report.drifted_columns)} of {len(report.columns)} columns drifted "
        f"(share {report.drift_share:.2f}, threshold {report.share_threshold:.2f})"
    )


def models_table(models: Iterable[Any]) -> FittingTable:
    """`matchday models list`: each model (`registry.list_models()`) with its latest version and aliases."""
    table = FittingTable(Col("model", key=True), "latest", Col("aliases", wrap=True), Col("created (UTC)", fold=1))
    for m in models:
        aliases = ", ".join(f"@{a}→{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(m.name, str(m.latest_version or "-"), aliases or "-", f"{m.created_at:%Y-%m-%d %H:%M}")
    return table


def model_versions(name: str, versions: Iterable[Any], alias_history: Sequence[Any]) -> Group:
    """`matchday models show NAME`: the versions (`registry.list_versions`) and how the aliases moved
    (`registry.alias_history`)."""
    table = FittingTable(
        Col("version", key=True),
        "flavor",
        "task",
        "inputs",
        Col("aliases", wrap=True),
        Col("sha256", fold=2),
        Col("created (UTC)", fold=1),
        title=name,
    )
    for v in versions:
        table.add_row(
            str(v.version),
            v.flavor,
            v.signature["output"]["task"],
            str(len(v.signature["inputs"])),
            ", ".join("@" + a for a in v.aliases) or "-",
            v.artifact_sha256[:12],
            f"{v.created_at:%Y-%m-%d %H:%M}",
        )
    if not alias_history:
        return Group(table)
    moves = FittingTable(
        Col("when (UTC)", key=True), "alias", "from", "to", Col("reason", wrap=True), title="alias history"
    )
    for m in alias_history:
        moves.add_row(
            f"{m.at:%Y-%m-%d %H:%M:%S}",
            "@" + m.alias,
            str(m.from_version or "-"),
            str(m.to_version or "-"),
            m.reason or "",
        )
    return Group(table, moves)


def version_detail(record: Any, profile: Mapping[str, Any] | None, lineage: Sequence[dict[str, Any]] = ()) -> Group:
    """`matchday models show NAME:VERSION`: the version (`registry.get_version`), its signature beside the
    reference profile's statistics (`registry.get_profile`) and, for a retrained version, its lineage (the
    `lineage_chain` entries of `models show --json`)."""
    aliases = ", ".join("@" + a for a in record.aliases) or "-"
    output = record.signature["output"]
    classes = f"  classes {output['classes']}" if output.get("classes") is not None else ""
    lines: list[RenderableType] = [
        f"[bold]{record.ref}[/]  flavor {record.flavor}  aliases {aliases}",
        f"artifact sha256 {record.artifact_sha256} ({record.artifact_size:,} bytes)",
        f"task {output['task']}{classes}; reference rows {profile['rows'] if profile else '-'}",
    ]
    table = FittingTable(
        Col("input", wrap=True, key=True),
        "type",
        "nullable",
        Col("range / categories", wrap=True),
        Col("reference mean ± std", wrap=True),
        title="signature",
    )
    columns = (profile or {}).get("columns", {})
    for c in record.signature["inputs"]:
        span = f"{c['min']:.4g} … {c['max']:.4g}" if c.get("min") is not None else short_list(c.get("categories"))
        stats = columns.get(c["name"], {})
        summary = (
            f"{stats['mean']:.4g} ± {stats['std']:.3g}"
            if "mean" in stats
            else (f"{stats.get('distinct', '-')} distinct" if stats else "-")
        )
        table.add_row(c["name"], c["type"], "yes" if c["nullable"] else "no", span, summary)
    lines.append(table)
    if lineage:
        lines.append(lineage_table(lineage))
    return Group(*lines)


def lineage_table(links: Iterable[dict[str, Any]]) -> FittingTable:
    table = FittingTable(
        Col("version", key=True),
        "parent",
        Col("trigger", wrap=True),
        "run",
        "gain",
        Col("rollout", wrap=True),
        Col("created (UTC)", fold=1),
        title="lineage",
    )
    for link in links:
        rollout = link["rollout"] or {}
        table.add_row(
            link["ref"],
            link["parent"] or "-",
            escape(link["trigger"] or "-"),
            str(link["run"]) if link["run"] is not None else "-",
            f"{link['gain']:+.4f}" if link["gain"] is not None else "-",
            f"{rollout['id']} ({rollout.get('state', '-')})" if rollout.get("id") is not None else "-",
            link["created_at"][:19].replace("T", " "),
        )
    return table


# -- rollouts ---------------------------------------------------------------------------------------

GATE_COLOURS = {"pass": "green", "fail": "red", "inconclusive": "yellow", "skipped": "dim"}


def rollout_status(status: Any) -> Group:
    """`matchday rollout status`: where the rollout (`rollouts.status(...)`) stands, the live numbers behind
    its next decision, and its recent events."""
    r, plan = status.rollout, status.plan
    where = f"step {r.step + 1}/{len(plan.steps)}, " if r.strategy == "canary" else ""
    if r.phase == "shadow":  # a canary's shadow_first: mirrored, answering nothing yet
        where = f"shadowing {plan.shadow_first or 0:g}s before step 1/{len(plan.steps)}, "
    lines: list[RenderableType] = [
        f"rollout {r.id} on [bold]{r.deployment}[/]: {r.strategy} {r.baseline} -> {r.candidate}",
        f"state [bold]{r.state}[/] ({r.phase}), {where}candidate share {r.weight:g}%, "
        f"failed analyses {r.failures}/{plan.failure_limit + 1}",
    ]
    if r.reason:
        lines.append(f"reason: {r.reason}")
    report = status.report or {}
    if "gates" in report:
        gates = FittingTable(
            Col("gate", key=True),
            "outcome",
            Col("detail", wrap=True),
            title=f"analysis of the current window: {report['outcome']}",
        )
        for g in report["gates"]:
            gates.add_row(g["name"], f"[{GATE_COLOURS[g['outcome']]}]{g['outcome']}[/]", g["detail"])
        lines.append(gates)
        if report.get("shadow"):
            lines.append(shadow_line(report["shadow"]))
    elif "baseline" in report:
        arms = FittingTable(
            Col("version", key=True), "rows", "error rate", "p50 ms", "p99 ms", "labelled", report["baseline"]["metric"]
        )
        for arm in (report["baseline"], report["candidate"]):
            arms.add_row(
                f"{arm['model']}:{arm['version']}",
                str(arm["requests"]),
                pct(arm["error_rate"]),
                ms(arm["latency_p50_seconds"]),
                ms(arm["latency_p99_seconds"]),
                str(arm["labelled"]),
                num(arm["metric_value"]),
            )
        lines.append(arms)
    elif "agreement" in report:
        lines.append(shadow_line(report))
    if status.events:
        events = FittingTable(Col("at (UTC)", key=True), "event", "by", Col("reason", wrap=True), title="events")
        for e in status.events:
            events.add_row(f"{e.at:%H:%M:%S}", e.kind, e.actor, e.reason)
        lines.append(events)
    return Group(*lines)


def shadow_line(report: dict[str, Any]) -> str:
    return (
        f"shadow {report['model']}:{report['version']}: {report['requests']} rows mirrored, error rate "
        f"{pct(report['error_rate'])}, p99 {ms(report['latency_p99_seconds'])} ms, agreement with the "
        f"primary {pct(report['agreement'])} on {report['compared']} rows; {report['metric']} "
        f"{num(report['shadow_metric'])} vs primary {num(report['primary_metric'])} on "
        f"{report['labelled']} labelled rows"
    )


# -- monitoring -------------------------------------------------------------------------------------


def windows_table(
    title: str, windows: Iterable[Any], metrics: Sequence[str], diagnosis: Callable[[Any], str], *, seconds: bool
) -> FittingTable:
    """`matchday metrics`: one row per window (`monitoring.windows.series(...)`), newest last; ``diagnosis``
    is `monitoring.diagnosis`, ``seconds`` shows the start to the second (count windows)."""
    table = FittingTable(
        Col("window (UTC)", key=True),
        Col("version", key=True),
        *metrics,
        Col("diagnosis", wrap=True),
        title=title,
    )
    for w in windows:
        start = f"{w.start:%m-%d %H:%M:%S}" if seconds else f"{w.start:%m-%d %H:%M}"
        table.add_row(start, str(w.version), *[metric_text(n, w.metrics.get(n)) for n in metrics], diagnosis(w))
    return table


def alert_condition(alert: Any) -> str:
    """An alert's condition on its value's scale: a monitor relative to the reference (``< -0.05`` of the
    change) reads ``< 0.900 (reference -0.05)`` beside an accuracy of 0.692, not ``-0.05``."""
    condition = str(alert.data.get("condition", ""))
    relative_to = alert.data.get("relative_to")
    if not relative_to:
        return condition
    op, _, number = condition.partition(" ")
    try:
        line = float(alert.data["reference"]) + float(number)
    except (KeyError, TypeError, ValueError):  # an alert stored without its reference
        return f"{condition} vs {relative_to}"
    return f"{op} {metric_text(alert.metric, line)} ({relative_to} {number})"


def alerts_table(alerts: Iterable[Any]) -> FittingTable:
    """`matchday alerts`: alerts (`monitoring.engine.alerts.list(...)`), with the monitor and the value behind
    each; alerts of one deployment name it in the title rather than on every row."""
    records = list(alerts)
    deployments = {a.deployment for a in records}
    one = deployments.pop() if len(deployments) == 1 else None
    columns = [Col("id", key=True), Col("deployment", wrap=True), Col("monitor", key=True)]
    table = FittingTable(
        *(columns if one is None else [columns[0], columns[2]]),
        "state",
        Col("severity", fold=2),
        "metric",
        "value",
        Col("condition", wrap=True),
        Col("opened (UTC)", wrap=True),
        Col("resolved", fold=1),
        title=None if one is None else f"alerts of {one}",
    )
    for a in records:
        segment = f" [{a.segment}]" if a.segment else ""
        named = [escape(a.monitor + segment)] if one is not None else [escape(a.deployment + segment), a.monitor]
        table.add_row(
            str(a.id),
            *named,
            "[red]firing[/red]" if a.state == "firing" else "resolved",
            a.severity,
            a.metric,
            metric_text(a.metric, a.value),
            escape(alert_condition(a)),
            f"{a.opened_at:%m-%d %H:%M:%S}",
            f"{a.resolved_at:%H:%M:%S}" if a.resolved_at else "",
        )
    return table
