"""The feature dashboard: one self-contained HTML page (inline CSS, no scripts, no external resources) that
shows every examined latent of `features.json` — the selected safe set S+ and unsafe set S- first, then the
others by rank — with its salience, per-side statistics, the judge's verdict, why it was not selected, and
its top-activating contexts with the activated token marked. Judge replies and dataset text are untrusted:
every string is escaped."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..io import write_text
from .page import DASH, as_float, esc, esc_text, fmt3, fmt_signed, page

log = logging.getLogger(__name__)

DEFAULT_TITLE = "SAFER feature dashboard"
SETS = (
    ("safe", "Safe set S+", "fires more on chosen responses"),
    ("unsafe", "Unsafe set S\u2212", "fires more on rejected responses"),
)
Latent = Mapping[str, Any]


def latent_key(latent: Any) -> str:
    """A latent id as used for lookups and anchors (`7`), whatever type the JSON gave it."""
    x = as_float(latent)
    return str(int(x)) if x is not None and x.is_integer() else str(latent)


def _anchor(latent: Any) -> str:
    return esc(f"latent-{latent_key(latent)}")


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


def _fmt_num(value: Any) -> str:
    x = as_float(value)
    if x is None:
        return DASH
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:.3f}"


def _salience(value: Any) -> str:
    x = as_float(value)
    cls = "pos" if x is not None and x > 0 else "neg" if x is not None and x < 0 else "muted"
    return f'<span class="{cls}">{esc(fmt_signed(value))}</span>'


def _badge(kind: str | None) -> str:
    if kind == "safe":
        return '<span class="badge safe">S+ safe</span>'
    if kind == "unsafe":
        return '<span class="badge unsafe">S\u2212 unsafe</span>'
    return '<span class="badge">not selected</span>'


def _judge(rec: Latent) -> tuple[str, str, str]:
    """(score, status, explanation) as display text."""
    judge = rec.get("judge")
    if not isinstance(judge, Mapping):
        return DASH, "none", ""
    score = as_float(judge.get("score"))
    return (
        DASH if score is None else f"{score:g}",
        str(judge.get("status") or DASH),
        str(judge.get("explanation") or ""),
    )


def _contexts_table(contexts: Sequence[Mapping[str, Any]]) -> str:
    acts = [as_float(c.get("activation")) for c in contexts]
    top = max((a for a in acts if a is not None and a > 0), default=0.0)
    rows = []
    for ctx, act in zip(contexts, acts):
        width = int(round(48 * act / top)) if act is not None and act > 0 and top > 0 else 0
        position = ctx.get("position")
        rows.append(
            "<tr>"
            f'<td class="num">{esc(fmt3(act))}<span class="bar" style="width:{width}px"></span></td>'
            f"<td>{esc(ctx.get('side') or DASH)}</td>"
            f"<td>{esc(ctx.get('pair_id') or DASH)}</td>"
            f'<td class="num">{esc(DASH if position is None or position == -1 else position)}</td>'
            f'<td class="left">{esc_text(ctx.get("left", ""))}</td>'
            f'<td class="tok"><mark>{esc_text(ctx.get("token", ""))}</mark></td>'
            f'<td class="right">{esc_text(ctx.get("right", ""))}</td>'
            "</tr>"
        )
    return (
        '<table class="ctx"><colgroup><col class="act"><col class="side"><col class="pair"><col class="posn">'
        '<col class="lft"><col class="tok"><col class="rgt"></colgroup>'
        "<thead><tr><th>activation</th><th>side</th><th>pair</th><th>pos</th>"
        '<th style="text-align:right">left context</th><th>token</th><th>right context</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render_latent(rec: Latent, kind: str | None, open_contexts: bool = True) -> str:
    """One latent as a card: header, per-side statistics, judge verdict, reason, contexts."""
    latent = rec.get("latent")
    score, status, explanation = _judge(rec)
    header = (
        f'<header><span class="id">latent {esc(latent_key(latent))}</span>{_badge(kind)}'
        f"<span>rank {esc(_fmt_num(rec.get('rank')))}</span>"
        f"<span>salience {_salience(rec.get('salience'))}</span>"
        f'<span>judge score <b>{esc(score)}</b> <span class="muted">({esc(status)})</span></span>'
        f"<span>{esc(_fmt_num(rec.get('n_distinct_tokens')))} distinct tokens</span></header>"
    )
    stats = (
        '<table class="stats"><thead><tr><th></th><th class="num">sum</th><th class="num">active positions</th>'
        '<th class="num">mean when active</th></tr></thead><tbody>'
        + "".join(
            f'<tr><th>{side}</th><td class="num">{esc(_fmt_num(rec.get(f"{side}_sum")))}</td>'
            f'<td class="num">{esc(_fmt_num(rec.get(f"{side}_count")))}</td>'
            f'<td class="num">{esc(fmt3(rec.get(f"{side}_mean")))}</td></tr>'
            for side in ("chosen", "rejected")
        )
        + "</tbody></table>"
    )
    stats += _reward_effect(rec)
    judge = f'<div class="judge"><b>Judge:</b> {esc(explanation)}</div>' if explanation else ""
    reason = rec.get("reason")
    why = f'<div class="reason"><b>Not selected:</b> {esc(reason)}</div>' if reason and kind is None else ""
    contexts = [c for c in rec.get("contexts") or [] if isinstance(c, Mapping)]
    if contexts:
        ctx = (
            f"<details{' open' if open_contexts else ''}><summary>{len(contexts)} top-activating contexts"
            f"</summary>{_contexts_table(contexts)}</details>"
        )
    else:
        ctx = '<p class="muted small">no contexts recorded</p>'
    return (
        f'<section class="latent {esc(kind or "other")}" id="{_anchor(latent)}">'
        f"{header}{stats}{judge}{why}{ctx}</section>"
    )


EFFECT_ROWS = (
    ("effect_chosen", "reward effect on chosen responses"),
    ("effect_rejected", "reward effect on rejected responses"),
    ("margin_effect", "margin effect, all pairs"),
    ("margin_effect_safety", "margin effect, safety pairs"),
    ("margin_effect_chat", "margin effect, chat pairs"),
)


def _reward_effect(rec: Latent) -> str:
    """The latent's mean reward attribution (per training pair) and, where it was tested, its specificity:
    the mean |margin change| its ablation causes on held-out safety and chat pairs."""
    effect = rec.get("reward_effect")
    spec = rec.get("specificity")
    if not isinstance(effect, Mapping) and not isinstance(spec, Mapping):
        return ""
    rows = []
    if isinstance(effect, Mapping):
        rows += [
            f'<tr><th>{esc(label)}</th><td class="num">{esc(_effect(effect.get(key)))}</td></tr>'
            for key, label in EFFECT_ROWS
        ]
    if isinstance(spec, Mapping):
        rows += [
            f"<tr><th>ablation: mean |margin change|, held-out {side}</th>"
            f'<td class="num">{esc(fmt3(spec.get(side)))}</td></tr>'
            for side in ("safety", "chat")
        ]
        rows.append(f'<tr><th>specificity (safety / chat)</th><td class="num">{esc(_ratio(spec))}</td></tr>')
    return (
        '<table class="stats"><thead><tr><th>reward attribution (z &middot; d &middot; dr/dh, mean per pair)'
        f'</th><th class="num">value</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _ratio(spec: Any) -> str:
    if not isinstance(spec, Mapping) or "ratio" not in spec:
        return DASH
    r = spec.get("ratio")
    return "undefined" if r is None else ("inf" if r == float("inf") else f"{r:.2f}")


def _margin_effect(rec: Latent) -> str:
    effect = rec.get("reward_effect")
    return _effect(effect.get("margin_effect")) if isinstance(effect, Mapping) else DASH


def _effect(value: Any) -> str:
    """A reward effect: small (a fraction of a margin), so 4 decimals, or 3 significant digits below 1e-3."""
    x = as_float(value)
    if x is None:
        return DASH
    return f"{x:+.4f}" if abs(x) >= 1e-3 or x == 0 else f"{x:+.2e}"


def _overview(records: Sequence[tuple[Latent, str | None]]) -> str:
    head = (
        '<thead><tr><th>latent</th><th>set</th><th class="num">rank</th><th class="num">salience</th>'
        '<th class="num">chosen mean</th><th class="num">rejected mean</th><th class="num">margin effect</th>'
        '<th class="num">specificity</th><th class="num">judge</th>'
        '<th>status</th><th class="num">tokens</th><th>why not selected</th></tr></thead>'
    )
    rows = []
    for rec, kind in records:
        score, status, _ = _judge(rec)
        rows.append(
            f'<tr><td><a href="#{_anchor(rec.get("latent"))}">{esc(latent_key(rec.get("latent")))}</a></td>'
            f"<td>{esc({'safe': 'S+', 'unsafe': 'S-'}.get(kind or '', DASH))}</td>"
            f'<td class="num">{esc(_fmt_num(rec.get("rank")))}</td><td class="num">{_salience(rec.get("salience"))}</td>'
            f'<td class="num">{esc(fmt3(rec.get("chosen_mean")))}</td>'
            f'<td class="num">{esc(fmt3(rec.get("rejected_mean")))}</td>'
            f'<td class="num">{esc(_margin_effect(rec))}</td>'
            f'<td class="num">{esc(_ratio(rec.get("specificity")))}</td>'
            f'<td class="num">{esc(score)}</td><td>{esc(status)}</td>'
            f'<td class="num">{esc(_fmt_num(rec.get("n_distinct_tokens")))}</td>'
            f"<td>{esc(rec.get('reason') or '') if kind is None else ''}</td></tr>"
        )
    return f"<table>{head}<tbody>{''.join(rows)}</tbody></table>"


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
