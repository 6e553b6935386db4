"""The inspection report (inspect/report.html): the most suspect pairs with both responses, every detector's
score and percentile, the SAFER features that pushed the score (linked to the feature dashboard), and how the
detectors agree."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..io import write_text
from .page import esc, esc_text, fmt3, html_table, kv_table, page


def _features_cell(top: str, labels: dict[str, str], dashboard: str) -> str:
    """`12:+0.301 7:-0.120` -> links to the dashboard's latent sections, with the judge's explanation on hover."""
    parts = []
    for item in (top or "").split():
        latent, _, value = item.partition(":")
        title = esc(labels.get(latent, ""))
        parts.append(
            f'<a href="{esc(dashboard)}#latent-{esc(latent)}" title="{title}">{esc(latent)}</a> {esc(value)}'
        )
    return "<br>".join(parts)


def suspects_page(
    suspects: Sequence[dict],
    detectors: Sequence[str],
    summary: dict,
    labels: dict[str, str],
    dashboard: str = "../report/features.html",
) -> str:
    """`suspects` in rank order (most suspect first), each with prompt, chosen, rejected, the detectors' values
    (`<name>`) and percentiles (`<name>_pct`), top_features and removed."""
    head = [
        "#",
        "pair",
        "prompt",
        "chosen (labelled better)",
        "rejected",
        *detectors,
        "SAFER features",
        "removed",
    ]
    rows, classes = [], []
    for r in suspects:
        rows.append(
            [
                esc(r["rank"]),
                f"{esc(r['id'])}<br><span class='muted small'>{esc(r['source'])} · {esc(r['kind'])}</span>",
                esc_text(r["prompt"]),
                esc_text(r["chosen"]),
                esc_text(r["rejected"]),
                *[
                    f"{fmt3(r.get(d))}<br><span class='muted small'>{fmt3(r.get(d + '_pct'))}</span>"
                    for d in detectors
                ],
                _features_cell(r.get("top_features", ""), labels, dashboard),
                "yes" if r.get("removed") else "",
            ]
        )
        classes.append("removed" if r.get("removed") else "")
    agree = summary.get("spearman", {})
    names = [d for d in detectors if d in agree]
    agreement = html_table(
        ["", *map(esc, names)],
        [[esc(a), *[fmt3(agree[a].get(b)) for b in names]] for a in names],
        numeric=range(1, len(names) + 1),
    )
    body = (
        "<h1>Suspect pairs</h1>"
        f"<p>Ranked by <b>{esc(summary['detector'])}</b> (lowest first: the label disagrees most). Each cell "
        "gives the detector's value and, below it, its percentile among all pairs (low = suspect). "
        f"{esc(summary['removed'])} of {esc(summary['pairs'])} pairs are removed from the cleaned set "
        f"({esc(summary['rule'])}). All pairs: <code>suspects.csv</code>; the cleaned set: "
        "<code>cleaned/</code>.</p>"
        + kv_table({k: v for k, v in summary.items() if k not in ("spearman", "definitions")})
        + "<h2>Detectors</h2>"
        + html_table(
            ["detector", "what it is", "seconds"],
            [
                [
                    esc(d),
                    esc(summary.get("definitions", {}).get(d, "")),
                    esc(summary.get("cost_s", {}).get(d, "")),
                ]
                for d in detectors
            ],
            numeric=[2],
        )
        + "<h2>How the detectors agree (Spearman)</h2>"
        + agreement
        + f"<h2>The {len(suspects)} most suspect pairs</h2>"
        + html_table(
            head, rows, numeric=range(5, 5 + len(detectors)), row_classes=classes, css_class="suspects"
        )
    )
    return page("safer-rm: suspect pairs", body)


def write_suspects_page(path: Path, *args, **kw) -> None:
    write_text(path, suspects_page(*args, **kw))
