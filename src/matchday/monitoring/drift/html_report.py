"""A self-contained HTML drift report: inline CSS and SVG, no script, nothing fetched (opens offline)."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from matchday.monitoring.drift.engine import ColumnDrift, DriftReport

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2433;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .25rem}.muted{color:#5b6577}
.verdict{display:inline-block;padding:.2rem .6rem;border-radius:.3rem;font-weight:600}
.drift{background:#fde2e1;color:#9b1c1c}.ok{background:#dcfce7;color:#166534}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e5e7eb}
th{font-weight:600;background:#f6f7f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
.column{border:1px solid #e5e7eb;border-radius:.5rem;padding:.75rem 1rem;margin:1rem 0}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem;vertical-align:middle}
"""
_REF, _CUR = "#6b8fd6", "#e8833a"


def render_html(
    report: DriftReport,
    *,
    title: str = "matchday drift report",
    reference_name: str = "reference",
    current_name: str = "current",
) -> str:
    verdict = (
        "drift" if report.dataset_drift else "ok",
        "Dataset drift detected" if report.dataset_drift else "No dataset drift",
    )
    rows = "".join(_row(c) for c in report.columns.values())
    multi = ""
    if report.multivariate:
        m = report.multivariate
        multi = (
            f"<p>Multivariate check (domain classifier): ROC AUC <b>{m['roc_auc']:.3f}</b> ± {m['roc_auc_std']:.3f}, "
            f"threshold {m['threshold']}: {'<b>drift</b>' if m['drifted'] else 'no drift'}.</p>"
        )
    sections = "".join(_section(c) for c in report.columns.values())
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="muted">{html.escape(reference_name)} ({report.reference_rows:,} rows) vs {html.escape(current_name)}
({report.current_rows:,} rows) · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>
<p><span class="verdict {verdict[0]}">{verdict[1]}</span>
{len(report.drifted_columns)} of {len(report.columns)} columns drifted (share {report.drift_share:.2f}, threshold {report.share_threshold:.2f})</p>
{multi}
<table><thead><tr><th>column</th><th>type</th><th>verdict</th><th>test</th><th>statistic</th><th>p-value</th>
<th>threshold</th><th>missing</th><th>out of range / unseen</th></tr></thead><tbody>{rows}</tbody></table>
<p class="legend muted">Histograms: <span style="background:{_REF}"></span>{html.escape(reference_name)}
<span style="background:{_CUR}"></span>{html.escape(current_name)} (share of rows per bin)</p>
{sections}
</body></html>"""


def _row(c: ColumnDrift) -> str:
    quality = c.out_of_range_share if c.kind == "numeric" else c.unseen_share
    return (
        f"<tr><td><a href='#col-{_anchor(c.column)}'>{html.escape(c.column)}</a></td><td>{c.kind}</td>"
        f"<td><span class='verdict {'drift' if c.drifted else 'ok'}'>{'drift' if c.drifted else 'ok'}</span></td>"
        f"<td>{c.test}</td><td class=num>{_fmt(c.statistic)}</td><td class=num>{_fmt(c.p_value)}</td>"
        f"<td class=num>{c.threshold:g}</td><td class=num>{c.missing_share:.1%}</td>"
        f"<td class=num>{'' if quality is None else f'{quality:.1%}'}</td></tr>"
    )


def _section(c: ColumnDrift) -> str:
    measure = f"p-value {_fmt(c.p_value)}" if c.p_value is not None else f"distance {_fmt(c.statistic)}"
    return (
        f"<div class=column id='col-{_anchor(c.column)}'><b>{html.escape(c.column)}</b> "
        f"<span class=muted>· {c.test}, {measure}, threshold {c.threshold:g} · "
        f"{'drift' if c.drifted else 'no drift'}</span>{_svg(c.histogram)}</div>"
    )


def _svg(hist: dict[str, Any], width: int = 1000, height: int = 180) -> str:
    if not hist:
        return "<p class=muted>no values to plot</p>"
    ref, cur = hist["reference"], hist["current"]
    labels = hist.get("categories") or [f"{e:.3g}" for e in hist["edges"][:-1]]
    n = len(ref)
    top = max(max(ref, default=0), max(cur, default=0)) or 1.0
    slot = (width - 40) / max(n, 1)
    bar = max(slot / 2 - 1, 0.5)
    parts = [f'<svg viewBox="0 0 {width} {height + 30}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">']
    for i in range(n):
        x = 30 + i * slot
        for j, (value, color) in enumerate(((ref[i], _REF), (cur[i], _CUR))):
            h = value / top * height
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{html.escape(str(labels[i]))}: {value:.2%}</title></rect>'
            )
        if n <= 30:
            parts.append(
                f'<text x="{x + bar:.1f}" y="{height + 14}" font-size="10" text-anchor="middle" '
                f'fill="#5b6577">{html.escape(str(labels[i])[:12])}</text>'
            )
    parts.append(f'<text x="0" y="10" font-size="10" fill="#5b6577">{top:.0%}</text></svg>')
    return "".join(parts)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if value != value:  # NaN
        return "n/a"
    return f"{value:.4g}"


def _anchor(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name)
