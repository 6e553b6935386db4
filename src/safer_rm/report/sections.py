"""The run report's sections as HTML: the summary's sub-dicts as key/value tables, with tables of their own for
the timing and the causal test, the poisoning audit's detectors, and the features with the link to the
dashboard; and the names of the files they link to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .page import DASH, as_float, esc, fmt3, html_table, kv_table

DASHBOARD, SALIENCE_PNG, EFFECT_PNG, AUDIT_PNG = (
    "features.html",
    "salience.png",
    "reward_effect.png",
    "audit.png",
)
SUMMARY_SECTIONS = ("sae", "features", "causal", "timing")
"""Summary sub-dicts shown first, in this order; other dict-valued entries follow (except `variants`, which
repeats the results)."""
SKIP_SUMMARY = ("variants", "audit")


def _img(name: str, caption: str) -> str:
    return (
        f'<figure><a href="{esc(name)}"><img src="{esc(name)}" alt="{esc(caption)}"></a>'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def _summary_sections(summary: Mapping[str, Any]) -> str:
    parts = []
    scalars = {k: v for k, v in summary.items() if not isinstance(v, Mapping | list)}
    if scalars:
        parts.append("<h3>run</h3>" + kv_table(scalars))
    names = [k for k in SUMMARY_SECTIONS if isinstance(summary.get(k), Mapping)]
    names += [
        k for k, v in summary.items() if isinstance(v, Mapping) and k not in names and k not in SKIP_SUMMARY
    ]
    for name in names:
        if name == "timing" and isinstance(summary[name].get("groups"), list):
            parts.append("<h3>timing</h3>" + _timing_section(summary[name]))
            continue
        if name == "causal" and isinstance(summary[name].get("scales"), list):
            parts.append(f"<h3>{esc(name)}</h3>" + _causal_section(summary[name]))
            continue
        parts.append(
            f"<h3>{esc(name)}</h3>"
            + (kv_table(summary[name]) if summary[name] else '<p class="muted">empty</p>')
        )
    return "\n".join(parts)


def _timing_section(t: Mapping[str, Any]) -> str:
    """Seconds and share of each stage (variants and seeds summed), the total, and the budget if set."""
    rows = "".join(
        f"<tr><td>{esc(g['stage'])}</td><td>{g['count']}</td><td>{g['seconds']:.1f}</td>"
        f"<td>{100 * g['share']:.1f} %</td></tr>"
        for g in t["groups"]
    )
    budget = t.get("budget_s")
    note = ""
    if budget is not None:
        state = "over" if t.get("over_budget") else "within"
        note = f"<p><b>{state} budget</b>: {t['total_s']:.0f} s of run.budget_s {budget:.0f} s</p>"
    return (
        "<table><tr><th>stage</th><th>runs</th><th>seconds</th><th>share</th></tr>"
        f"{rows}<tr><td><b>total</b></td><td></td><td>{t['total_s']:.1f}</td><td></td></tr></table>{note}"
    )


def _interval(v: Mapping[str, Any] | None) -> str:
    if not v or as_float(v.get("value")) is None:
        return DASH
    return (
        f"{fmt3(v['value'])} <span class='muted small'>[{fmt3(v.get('low'))}, {fmt3(v.get('high'))}]</span>"
    )


def _difference(v: Mapping[str, Any] | None) -> str:
    if not v or as_float(v.get("diff")) is None:
        return DASH
    text = f"{v['diff']:+.3f} <span class='muted small'>[{v['low']:+.3f}, {v['high']:+.3f}]</span>"
    return f"<b>{text}</b>" if v["low"] > 0 or v["high"] < 0 else text


def _scale_title(scale: Any) -> str:
    x = as_float(scale)
    if x is None:
        return "scale " + esc(scale)
    return "zeroed (&times; 0)" if x == 0 else f"scaled &times; {x:g}"


def _ratio(value: Any) -> str:
    x = as_float(value)
    return DASH if x is None else f"{x:.2f}"


def _causal_row(name: str, info: Mapping[str, Any], cond: Mapping[str, Any]) -> list[str]:
    rand = cond.get("random") or {}
    base = (info.get("base") or {}).get("accuracy")
    random_drop = DASH
    if as_float(rand.get("margin_drop")) is not None:
        random_drop = f"{fmt3(rand['margin_drop'])} &plusmn; {fmt3(rand.get('margin_drop_sd'))}"
    return [
        esc(name),
        esc(info.get("n", DASH)),
        f"{_interval(base)} &rarr; {_interval(cond.get('accuracy'))}",
        _difference(cond.get("accuracy_diff")),
        _interval(cond.get("margin_drop")),
        random_drop,
        _difference(cond.get("versus_random")),
    ]


def _causal_section(causal: Mapping[str, Any]) -> str:
    """One table per scale: every group's accuracy before and after the edit, the paired difference, the
    margin drop, the random sets' drop and the selection-minus-random difference, and the specificity ratio."""
    groups = causal.get("groups") or {}
    note = (
        f"{causal.get('n_latents')} selected latents scaled inside the clean RM (reconstruction error kept), "
        f"against the unedited RM and {causal.get('draws')} random sets of as many latents scaled alike. "
        "Accuracy base &rarr; edited; edited &minus; base and selection &minus; random (per pair: the "
        "selection's outcome minus the mean over the random sets) are paired differences, bold where the "
        "interval excludes 0; margin drop = base minus edited margin (positive: the edit hurt the chosen "
        f"side); random: mean &plusmn; sd over the sets. Intervals: 95 % bootstrap over pairs "
        f"({causal.get('n_boot')} replicates). Specificity: mean |margin change| on the safety groups over "
        "that on the chat groups."
    )
    head = ["group", "n", "accuracy base &rarr; edited", "edited &minus; base", "margin drop", "random drop"]
    head.append("selection &minus; random")
    parts = [f'<p class="muted small">{note}</p>']
    for cond in causal.get("scales") or []:
        per_group = cond.get("groups") or {}
        rows = [_causal_row(g, groups.get(g) or {}, c) for g, c in per_group.items()]
        parts.append(
            f"<h4>{_scale_title(cond.get('scale'))}</h4>"
            + html_table(head, rows, numeric=range(1, 7))
            + f'<p class="small">specificity ratio {_ratio(cond.get("specificity"))} '
            f"(random sets: {_ratio(cond.get('random_specificity'))})</p>"
        )
    return "\n".join(parts)


def _audit_section(audit: Mapping[str, Any], has_plot: bool) -> str:
    """Each detector's AUROC, average precision and precision at q on the planted flips, over all pairs and
    over safety pairs alone, with 95 % intervals, and its cost."""
    detectors = audit.get("detectors") or {}
    if not detectors:
        return kv_table(audit)
    versus = audit.get("auroc_versus") or {}
    ref, diffs = versus.get("reference"), versus.get("differences") or {}
    head = [
        "detector",
        *[f"{m} ({pop})" for pop in ("all", "safety") for m in ("AUROC", "AP", "precision")],
        f"AUROC − {esc(ref)} (safety)" if ref else "",
        "s",
    ]
    rows = [
        [
            f"<span title='{esc((audit.get('definitions') or {}).get(d, ''))}'>{esc(d)}</span>",
            *[
                _interval((detectors[d].get(pop) or {}).get(m))
                for pop in ("all", "safety")
                for m in ("auroc", "ap", "precision")
            ],
            _difference((diffs.get(d) or {}).get("safety")) if ref else "",
            esc((audit.get("cost_s") or {}).get(d, DASH)),
        ]
        for d in detectors
    ]
    first = next(iter(detectors.values()))
    n_all, n_safe = first["all"]["auroc"], first["safety"]["auroc"]
    note = (
        f"{audit.get('planted')} of {audit.get('pairs')} training pairs flipped at random among "
        f"{esc(audit.get('scope', 'all'))} pairs, {audit.get('repeats', 1)} repeat(s), each with its own reward "
        f"model, SAE and detectors; mean over repeats with a 95 % bootstrap interval (pairs resampled). "
        f"Safety pairs: {n_safe['n']} per repeat, {n_safe['positives']} planted in all "
        f"(all pairs: {n_all['positives']}). Chance: AUROC 0.5, AP and precision = the planted share. "
        "Seconds: what each detector cost to compute, its reward models' training included."
    )
    plot = f'<div class="plots">{_img(AUDIT_PNG, "AUROC per detector")}</div>' if has_plot else ""
    return f'<p class="muted small">{note}</p>' + html_table(head, rows, numeric=range(1, 9)) + plot


def _features_section(features: Mapping[str, Any], has_salience: bool) -> str:
    selection = features.get("selection") if isinstance(features.get("selection"), Mapping) else {}
    safe, unsafe = list(selection.get("safe") or []), list(selection.get("unsafe") or [])
    examined = len(features.get("latents") or [])
    parts = [
        f'<p><a href="{DASHBOARD}">Feature dashboard</a>: {examined} examined latents with their judge '
        "verdicts and top-activating contexts.</p>",
        kv_table(
            {
                "safe set S+": f"{len(safe)}: {', '.join(map(str, safe))}" if safe else "0",
                "unsafe set S-": f"{len(unsafe)}: {', '.join(map(str, unsafe))}" if unsafe else "0",
                "layer": features.get("layer"),
                "normalize": features.get("normalize"),
                "ranked by": features.get("ranking", "firing"),
                "specificity": (features.get("specificity") or {}).get("threshold", "not required"),
                "judge": features.get("judge") or {},
            }
        ),
    ]
    imgs = [_img(SALIENCE_PNG, "salience of the examined latents")] if has_salience else []
    if any(isinstance(r.get("reward_effect"), Mapping) for r in features.get("latents") or []):
        imgs.append(_img(EFFECT_PNG, "reward attribution: margin effect on safety vs chat pairs"))
    if imgs:
        parts.append(f'<div class="plots">{"".join(imgs)}</div>')
    return "\n".join(parts)
