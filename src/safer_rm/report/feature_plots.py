"""PNG plots of the features stage and the poisoning audit: salience of the examined latents, their reward
attribution on safety vs chat pairs, and each audit detector's AUROC. Built and written like the sweep plots
(`plots`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .dashboard import latent_key, membership, rank_key
from .page import as_float
from .plots import _save

SAFE_COLOR, UNSAFE_COLOR, OTHER_COLOR = "#1b7f4b", "#b3261e", "#b8c0c8"


def plot_salience(features: Mapping[str, Any], out_path: Path) -> Path | None:
    """Salience of the examined latents by rank, the selected safe (S+) and unsafe (S-) ones highlighted.
    None (nothing written) when no latent has a salience."""
    member = membership(features)  # the dashboard's sets and order, so the two never disagree
    recs = sorted(
        (
            r
            for r in features.get("latents") or []
            if as_float(r.get("salience")) is not None and r.get("latent") is not None
        ),
        key=rank_key,
    )
    if not recs:
        return None
    saliences = [as_float(r["salience"]) for r in recs]
    latents = [latent_key(r["latent"]) for r in recs]
    xs = list(range(1, len(recs) + 1))
    color = {"safe": SAFE_COLOR, "unsafe": UNSAFE_COLOR}
    colors = [color.get(member.get(lat), OTHER_COLOR) for lat in latents]
    fig = Figure(figsize=(min(12.0, 5.0 + 0.04 * len(recs)), 3.8))
    ax = fig.subplots()
    ax.bar(xs, saliences, color=colors, width=0.85)
    ax.axhline(0, color="black", linewidth=0.8)
    if len(recs) <= 40:
        ax.set_xticks(xs)
        ax.set_xticklabels(latents, rotation=90, fontsize=7)
        ax.set_xlabel("latent (by rank of |salience|)")
    else:
        ax.set_xlabel("rank of |salience|")
    ax.set_ylabel("salience  (C - R) / (C + R + 2m)")
    ax.set_title(f"Salience of the {len(recs)} examined latents", fontsize=11)
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in (SAFE_COLOR, UNSAFE_COLOR, OTHER_COLOR)]
    ax.legend(handles, ["selected safe (S+)", "selected unsafe (S-)", "not selected"], fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, Path(out_path))


def plot_reward_effect(features: Mapping[str, Any], out_path: Path) -> Path | None:
    """Each examined latent's mean margin effect (reward attribution, chosen minus rejected) on safety pairs
    against chat pairs, the selected sets highlighted: a safety-specific latent lies far from 0 vertically and
    near 0 horizontally. None when the run has no attribution."""
    member = membership(features)
    points = []
    for r in features.get("latents") or []:
        effect = r.get("reward_effect")
        if not isinstance(effect, Mapping) or r.get("latent") is None:
            continue
        x, y = as_float(effect.get("margin_effect_chat")), as_float(effect.get("margin_effect_safety"))
        if x is not None and y is not None:
            points.append((x, y, member.get(latent_key(r["latent"]))))
    if not points:
        return None
    fig = Figure(figsize=(5.6, 5.0))
    ax = fig.subplots()
    for kind, color, label in (
        (None, OTHER_COLOR, "not selected"),
        ("safe", SAFE_COLOR, "selected safe (S+)"),
        ("unsafe", UNSAFE_COLOR, "selected unsafe (S-)"),
    ):
        xs = [p[0] for p in points if p[2] == kind]
        ys = [p[1] for p in points if p[2] == kind]
        if xs:
            ax.scatter(
                xs,
                ys,
                s=18 if kind else 10,
                color=color,
                label=f"{label} ({len(xs)})",
                zorder=3 if kind else 2,
            )
    lim = max(max(abs(p[0]), abs(p[1])) for p in points) * 1.05 or 1.0
    ax.plot([-lim, lim], [-lim, lim], color="black", linewidth=0.6, linestyle=":", label="equal effect")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("mean margin effect on chat pairs")
    ax.set_ylabel("mean margin effect on safety pairs")
    ax.set_title(f"Reward attribution of the {len(points)} examined latents", fontsize=11)
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, alpha=0.3)
    return _save(fig, Path(out_path))


def plot_audit(audit: Mapping[str, Any], out_path: Path) -> Path | None:
    """The poisoning audit: each detector's AUROC on the planted flips, over all pairs and over safety pairs
    alone, with 95 % bootstrap intervals; chance (0.5) dashed. None when the audit has no detectors."""
    detectors = audit.get("detectors") or {}
    if not detectors:
        return None
    names = list(detectors)
    xs = list(range(len(names)))
    fig = Figure(figsize=(max(5.5, 1.1 * len(names) + 2), 3.8))
    ax = fig.subplots()
    for j, (pop, label) in enumerate((("all", "all pairs"), ("safety", "safety pairs"))):
        vals, low, high = [], [], []
        for d in names:
            v = (detectors[d].get(pop) or {}).get("auroc") or {}
            x = as_float(v.get("value"))
            vals.append(x if x is not None else float("nan"))
            low.append(x - as_float(v["low"]) if x is not None and as_float(v.get("low")) is not None else 0)
            high.append(
                as_float(v["high"]) - x if x is not None and as_float(v.get("high")) is not None else 0
            )
        ax.bar([x + (j - 0.5) * 0.38 for x in xs], vals, width=0.38, yerr=[low, high], capsize=3, label=label)
    ax.axhline(0.5, color="black", linestyle="--", linewidth=0.8)
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=20, fontsize=8)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("AUROC on planted flips")
    repeats = audit.get("repeats", 1)
    ax.set_title(
        f"Poisoning audit: {audit.get('q')} % flips planted among {audit.get('scope', 'all')} pairs, "
        f"{repeats} repeat{'s' if repeats != 1 else ''}",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, Path(out_path))
