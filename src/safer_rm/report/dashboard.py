"""The feature dashboard: one self-contained HTML page (inline CSS, no scripts, no external resources) that
shows every examined latent of `features.json` — the selected safe set S+ and unsafe set S- first, then the
others by rank — with its salience, per-side statistics, the judge's verdict, why it was not selected, and
its top-activating contexts with the activated token marked. Judge replies and dataset text are untrusted:
every string is escaped."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io import write_text
from .latent_cards import Latent, _anchor, _badge, _overview, latent_key, render_latent
from .page import DASH, as_float, esc, page

log = logging.getLogger(__name__)

DEFAULT_TITLE = "SAFER feature dashboard"
SETS = (
    ("safe", "Safe set S+", "fires more on chosen responses"),
    ("unsafe", "Unsafe set S\u2212", "fires more on rejected responses"),
)


def membership(features: Mapping[str, Any]) -> dict[str, str]:
    """latent key -> "safe" | "unsafe", from `selection` (or each record's `selected` when it is absent)."""
    selection = features.get("selection")
    if isinstance(selection, Mapping):
        out = {latent_key(i): "unsafe" for i in selection.get("unsafe") or []}
        out.update({latent_key(i): "safe" for i in selection.get("safe") or []})
        return out
    return {
        latent_key(r.get("latent")): str(r["selected"])
        for r in features.get("latents") or []
        if r.get("selected") in ("safe", "unsafe")
    }


def rank_key(rec: Latent) -> tuple[float, float]:
    rank = as_float(rec.get("rank"))
    salience = as_float(rec.get("salience")) or 0.0
    return (float("inf") if rank is None else rank, -abs(salience))


def render_dashboard(
    features: Mapping[str, Any], title: str = DEFAULT_TITLE, max_other: int | None = None
) -> str:
    """The dashboard page as a string. `max_other` caps how many not-selected latents get a full card."""
    latents = [r for r in features.get("latents") or [] if isinstance(r, Mapping)]
    by_key = {latent_key(r.get("latent")): r for r in latents}
    member = membership(features)
    selection = features.get("selection") if isinstance(features.get("selection"), Mapping) else {}
    judge = features.get("judge") if isinstance(features.get("judge"), Mapping) else {}

    meta = [
        (
            "judge",
            " / ".join(str(judge[k]) for k in ("kind", "model", "prompt_version") if judge.get(k)) or DASH,
        ),
        ("layer", features.get("layer", DASH)),
        ("normalize", features.get("normalize", DASH)),
        ("ranked by", features.get("ranking", "firing")),
        (
            "specificity",
            f">= {features['specificity'].get('threshold')}"
            if isinstance(features.get("specificity"), Mapping)
            else "not required",
        ),
        ("examined latents", len(latents)),
    ]
    parts = [
        f"<h1>{esc(title)}</h1>",
        '<p class="muted">' + " &middot; ".join(f"{esc(k)}: <b>{esc(v)}</b>" for k, v in meta) + "</p>",
        '<nav class="toc"><a href="#safe">safe set</a><a href="#unsafe">unsafe set</a>'
        '<a href="#other">other latents</a><a href="#overview">overview</a></nav>',
    ]

    ordered: list[tuple[Latent, str | None]] = []
    for kind, heading, note in SETS:
        ids = (
            [latent_key(i) for i in selection.get(kind) or []]
            if selection
            else [k for k, v in member.items() if v == kind]
        )
        parts.append(
            f'<h2 id="{kind}">{esc(heading)} <span class="muted small">{len(ids)} latents, {esc(note)}'
            "</span></h2>"
        )
        if not ids:
            parts.append('<p class="muted">none selected</p>')
        for key in ids:
            rec = by_key.get(key)
            if rec is None:
                log.warning("selected latent %s has no record in features.json", key)
                parts.append(
                    f'<section class="latent {kind}" id="{_anchor(key)}"><header><span class="id">latent '
                    f'{esc(key)}</span>{_badge(kind)}</header><p class="muted">no record</p></section>'
                )
                continue
            ordered.append((rec, kind))
            parts.append(render_latent(rec, kind))

    others = sorted((r for r in latents if latent_key(r.get("latent")) not in member), key=rank_key)
    shown = others if max_other is None else others[:max_other]
    parts.append(
        f'<h2 id="other">Other examined latents <span class="muted small">{len(others)} by rank of '
        "|salience|, not selected</span></h2>"
    )
    if len(shown) < len(others):
        parts.append(f'<p class="muted">showing the first {len(shown)}; all are in the overview below</p>')
    parts.extend(render_latent(rec, None, open_contexts=False) for rec in shown)
    ordered.extend((rec, None) for rec in others)

    parts.append('<h2 id="overview">Overview</h2>')
    parts.append(_overview(ordered))
    return page(title, "\n".join(parts))


def write_dashboard(
    features: Mapping[str, Any], out_path: Path, title: str = DEFAULT_TITLE, max_other: int | None = None
) -> Path:
    """Write the dashboard of `features` (the features stage's `features.json`) to `out_path`."""
    out_path = Path(out_path)
    write_text(out_path, render_dashboard(features, title=title, max_other=max_other))
    log.info("wrote the feature dashboard (%d latents) to %s", len(features.get("latents") or []), out_path)
    return out_path
