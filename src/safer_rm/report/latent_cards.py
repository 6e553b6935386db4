"""The feature dashboard's per-latent parts: a latent's card (header, per-side statistics, reward attribution,
judge verdict, why it was not selected, top-activating contexts) and the overview table, one row per latent.
Every string is escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .page import DASH, as_float, esc, esc_text, fmt3, fmt_signed

Latent = Mapping[str, Any]


def latent_key(latent: Any) -> str:
    """A latent id as used for lookups and anchors (`7`), whatever type the JSON gave it."""
    x = as_float(latent)
    return str(int(x)) if x is not None and x.is_integer() else str(latent)


def _anchor(latent: Any) -> str:
    return esc(f"latent-{latent_key(latent)}")


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
