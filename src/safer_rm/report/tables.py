"""The results table (variant x metrics, mean and std over seeds) as CSV, terminal text and HTML."""

from __future__ import annotations

import csv
import io
from html import escape

METRICS = ["Chat", "Chat Hard", "Safety", "Reasoning", "overall", "heldout safety", "heldout chat"]


def metric_names(rows: list[dict]) -> list[str]:
    present = {m for r in rows for m in r.get("metrics", {})}
    return [m for m in METRICS if m in present] + sorted(present - set(METRICS))


def _cell(row: dict, metric: str, key: str) -> float | None:
    value = row.get("metrics", {}).get(metric, {}).get(key)
    return None if value is None else float(value)


def to_csv(rows: list[dict]) -> str:
    names = metric_names(rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["variant", "mode", "method", "ratio", "n_seeds", *[c for m in names for c in (m, f"{m} std")]])
    for r in rows:
        cells = []
        for m in names:
            for key in ("mean", "std"):
                v = _cell(r, m, key)
                cells.append("" if v is None else f"{v:.6f}")
        w.writerow([r["variant"], r.get("mode", ""), r.get("method") or "", "" if r.get("ratio") is None else r["ratio"],
                    r.get("n_seeds", 1), *cells])
    return buf.getvalue()


def fmt(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3f}" if n <= 1 or std is None else f"{mean:.3f} ± {std:.3f}"


def text_table(rows: list[dict]) -> str:
    names = metric_names(rows)
    header = ["variant", *names]
    body = [[r["variant"], *[fmt(_cell(r, m, "mean"), _cell(r, m, "std"), r.get("n_seeds", 1)) for m in names]]
            for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)] if body else [len(h) for h in header]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in body]
    return "\n".join(lines)


def html_table(rows: list[dict]) -> str:
    names = metric_names(rows)
    head = "".join(f"<th>{escape(h)}</th>" for h in ["variant", "seeds", *names, "edited pairs by source"])
    out = [f"<table class='results'><thead><tr>{head}</tr></thead><tbody>"]
    for r in rows:
        cells = [f"<td class='name'>{escape(r['variant'])}</td>", f"<td>{r.get('n_seeds', 1)}</td>"]
        for m in names:
            cells.append(f"<td>{escape(fmt(_cell(r, m, 'mean'), _cell(r, m, 'std'), r.get('n_seeds', 1)))}</td>")
        mix = r.get("source_mix") or {}
        cells.append(f"<td class='mix'>{escape(', '.join(f'{k}: {v}' for k, v in mix.items()))}</td>")
        out.append(f"<tr class='{escape(r.get('mode', ''))}'>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)
