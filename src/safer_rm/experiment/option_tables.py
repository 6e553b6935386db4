"""The Markdown tables of `safer compare` (`options.compare_options`' result): per mode and ratio, accuracies
with intervals and paired differences in points; then every option's causal test, audit and selection, and
whether the options share their data split and non-SAFER training sets byte for byte."""

from __future__ import annotations

from ..curation.variants import Variant
from ..report.markdown import table
from .graph import CLEAN
from .options import REFERENCES

SELECTION_DETECTORS = ("safer", "combined", "probe", "combined_probe")
"""Audit detectors that may depend on the features settings: the SAFER score, its rank combination, and the
probe (on the top `features.examine` latents by the firing salience, so it changes with `features.normalize`
or `features.examine`, not with `features.salience` or `features.specific`) with its combination."""


# ---- cells ---------------------------------------------------------------------------------------------
def _num(x, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def accuracy_cell(iv: dict | None) -> str:
    """`0.578 [0.516, 0.639]`."""
    if not iv:
        return "-"
    return f"{iv['value']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"


def points_cell(d: dict | None) -> str:
    """A difference in points (x100): `+1.2 [-0.5, +3.0]`, `*` when the interval excludes 0."""
    if not d or d.get("diff") is None:
        return "-"
    star = "*" if d["low"] > 0 or d["high"] < 0 else ""
    return f"{100 * d['diff']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]{star}"


def _seeds(seeds: list[int]) -> str:
    return ",".join(map(str, seeds)) or "none"


# ---- tables --------------------------------------------------------------------------------------------
def groups(result: dict) -> list[tuple[str, str]]:
    """(mode, ratio) of every SAFER variant, in the order found."""
    edits = [Variant.parse(v) for o in result["options"].values() for v in o["variants"]]
    found = [(e.mode, f"{e.ratio:.1f}") for e in edits]
    return list(dict.fromkeys(found))


def sizes(result: dict) -> dict[str, int]:
    """Pairs per seed of every column (the same in every run: the runs were checked to share their pairs)."""
    out: dict[str, int] = {}
    entries = [*result["references"].values()]
    entries += [e for o in result["options"].values() for e in o["variants"].values()]
    for e in entries:
        for label, iv in e["intervals"].items():
            out.setdefault(label, iv["n"])
    return out


def accuracy_table(result: dict, mode: str, ratio: str) -> str:
    cols, n = result["columns"], sizes(result)
    header = ["option", "variant", "seeds", *[f"{c} (n={n.get(c, '-')})" for c in cols]]
    rows = []
    refs = [CLEAN, *(f"{mode}-{m}-{ratio}" for m in REFERENCES)]
    for ref in refs:
        if ref in result["references"]:
            e = result["references"][ref]
            rows.append(
                [
                    result["base"],
                    ref,
                    _seeds(e["seeds"]),
                    *[accuracy_cell(e["intervals"].get(c)) for c in cols],
                ]
            )
    variant = f"{mode}-safer-{ratio}"
    for label, o in result["options"].items():
        e = o["variants"].get(variant)
        if e is not None:
            rows.append(
                [label, variant, _seeds(e["seeds"]), *[accuracy_cell(e["intervals"].get(c)) for c in cols]]
            )
    head = f"### Accuracy: {mode} {ratio} %\n\n"
    foot = "\n\nacc [95 % interval]: hierarchical bootstrap over seeds, then pairs; n = pairs per seed."
    return head + table(header, rows) + foot


def difference_rows(result: dict, label: str, entry: dict) -> list[list[str]]:
    """An option's SAFER variant against clean, random, reward_margin (base run) and the base option."""
    cols, base = result["columns"], result["base"]
    targets = [(f"{name} ({base})", entry["versus"].get(name)) for name in (CLEAN, *REFERENCES)]
    if label != base:
        targets.append((f"option {base}", entry["options"].get(base)))
    return [
        [label, name, _seeds(d["seeds"]), *[points_cell(d["columns"].get(c)) for c in cols]]
        for name, d in targets
        if d is not None
    ]


def difference_table(result: dict, mode: str, ratio: str) -> str:
    cols, n = result["columns"], sizes(result)
    variant = f"{mode}-safer-{ratio}"
    header = ["option", "versus", "seeds", *[f"{c} (n={n.get(c, '-')})" for c in cols]]
    rows = [
        row
        for label, o in result["options"].items()
        if variant in o["variants"]
        for row in difference_rows(result, label, o["variants"][variant])
    ]
    head = f"### Differences: {variant} minus, in points (x100)\n\n"
    foot = (
        "\n\n+d [95 % interval], paired over the seeds both sides have and the pairs matched by id; "
        "* the interval excludes 0."
    )
    return head + table(header, rows) + foot


def causal_scale_rows(causal: dict) -> list[list[str]]:
    rows = []
    for sc in causal["scales"]:
        for name, g in sc["groups"].items():
            base, edited = g["base_accuracy"] or {}, g["accuracy"] or {}
            drop = g["margin_drop"]
            rows.append(
                [
                    _num(sc["scale"], "g"),
                    name,
                    str(g["n"]),
                    f"{_num(base.get('value'))} -> {accuracy_cell(edited)}",
                    points_cell(g["accuracy_diff"]),
                    accuracy_cell(drop),
                    f"{_num(g['random_margin_drop'])} ± {_num(g['random_margin_drop_sd'])}",
                    points_cell(g["versus_random"]),
                    _num(sc["specificity"], ".2f"),
                    _num(sc["random_specificity"], ".2f"),
                ]
            )
    return rows


def causal_tables(result: dict) -> str:
    parts = []
    header = [
        "scale",
        "group",
        "n",
        "accuracy base -> edited [interval]",
        "edited - base (points)",
        "margin drop",
        "random drop ± sd",
        "selection - random (points)",
        "specificity",
        "random specificity",
    ]
    for label, o in result["options"].items():
        c = o["causal"]
        if c is None:
            parts.append(f"### Causal test: {label}\n\nno causal/results.json")
        else:
            head = f"### Causal test: {label} (n_latents {c['n_latents']}, {c['draws']} random draws)\n\n"
            parts.append(head + table(header, causal_scale_rows(c)))
    return "\n\n".join(parts)


def audit_rows(audits: dict[str, dict], base: str, shown: list[str]) -> list[list[str]]:
    """Per option: the safer detector's AUROC and its paired difference to the base option, then the AUROC
    on safety pairs of the other detectors built on the selection (`shown`)."""
    rows = []
    for label, a in audits.items():
        d, versus = a["detectors"], a["versus"].get(base)
        rows.append(
            [
                label,
                accuracy_cell(d.get("safer", {}).get("safety")),
                "-" if versus is None else points_cell(versus["safety"]),
                accuracy_cell(d.get("safer", {}).get("all")),
                "-" if versus is None else points_cell(versus["all"]),
                *[accuracy_cell(d.get(name, {}).get("safety")) for name in shown],
            ]
        )
    return rows


def audit_tables(result: dict) -> str:
    base = result["base"]
    audits = {label: o["audit"] for label, o in result["options"].items() if o["audit"] is not None}
    if not audits:
        return "### Audit\n\nno audit/results.json"
    found = list(dict.fromkeys(name for a in audits.values() for name in a["detectors"]))
    shown = [name for name in SELECTION_DETECTORS if name in found and name != "safer"]
    header = ["option", "safer AUROC safety", f"- {base} (points)", "safer AUROC all", f"- {base} (points)"]
    header += [f"{name} AUROC safety" for name in shown]
    rows = audit_rows(audits, base, shown)
    ref = audits.get(base) or next(iter(audits.values()))
    safety, every = (
        ref["detectors"].get("safer", {}).get("safety", {}),
        ref["detectors"].get("safer", {}).get("all", {}),
    )
    foot = (
        f"\n\nq {ref['q']} %, {ref['repeats']} repeat(s); safety pairs n={safety.get('n')} "
        f"({safety.get('positives')} planted), all pairs n={every.get('n')} ({every.get('positives')} planted); "
        "differences paired on the same planted set and resamples; * the interval excludes 0. "
        f"{', '.join(shown) or 'no other detector'} may depend on the features settings too (on the SAFER "
        "score, or on the top latents by firing salience): shown per option."
    )
    others = [
        [name, accuracy_cell(d.get("safety")), accuracy_cell(d.get("all"))]
        for name, d in ref["detectors"].items()
        if name != "safer" and name not in SELECTION_DETECTORS
    ]
    other_table = table(["detector", "AUROC safety", "AUROC all"], others)
    label = base if base in audits else next(iter(audits))
    return (
        "### Audit: the safer detector\n\n"
        + table(header, rows)
        + foot
        + f"\n\n### Audit: the other detectors ({label}; they do not depend on the selection)\n\n"
        + other_table
    )


def selection_table(result: dict) -> str:
    header = [
        "option",
        "safe",
        "unsafe",
        "ranking",
        "specificity threshold",
        "tested",
        "kept",
        "attribution pearson",
        "slope",
    ]
    rows = []
    for label, o in result["options"].items():
        f = o["features"]
        if f is None:
            rows.append([label, *["-"] * (len(header) - 1)])
            continue
        spec, att = f["specificity"] or {}, f["attribution"] or {}
        rows.append(
            [
                label,
                str(f["safe"]),
                str(f["unsafe"]),
                f["ranking"] or "-",
                _num(spec.get("threshold"), "g"),
                _num(spec.get("tested"), "d"),
                _num(spec.get("kept"), "d"),
                _num(att.get("pearson")),
                _num(att.get("slope")),
            ]
        )
    return "### Selection\n\n" + table(header, rows) + differing_settings(result)


def differing_settings(result: dict) -> str:
    """A footer naming the `features.*` settings whose values differ between options (from the manifests)."""
    settings = {k: (o["features"] or {}).get("settings") or {} for k, o in result["options"].items()}
    keys = list(dict.fromkeys(key for got in settings.values() for key in got))
    differ = [key for key in keys if len({repr(got.get(key)) for got in settings.values()}) > 1]
    if not differ:
        return "\n\nThe options' recorded `features.*` settings do not differ."
    lines = [
        f"- {key}: " + ", ".join(f"{k} {got.get(key)!r}" for k, got in settings.items()) for key in differ
    ]
    return "\n\nSettings that differ between options:\n\n" + "\n".join(lines)


def shared_note(result: dict) -> str:
    """Whether the options share their data split and non-SAFER training sets byte for byte."""
    files = result["shared_files"]
    note = f"Shared files identical in every option: {len(files['identical'])}"
    if files["differ"]:
        note += f"; **differ: {', '.join(files['differ'])}** (the options are not the same experiment)"
    if files["missing"]:
        note += f"; missing somewhere: {', '.join(files['missing'])}"
    return note + "."


def markdown(result: dict) -> str:
    """Every table of a comparison (`compare_options`' result) as one Markdown document."""
    runs = "\n".join(f"- {label}: {path}" for label, path in result["runs"].items())
    parts = [f"## Feature-selection options (base: {result['base']})\n\n{runs}\n\n{shared_note(result)}"]
    for mode, ratio in groups(result):
        parts += [accuracy_table(result, mode, ratio), difference_table(result, mode, ratio)]
    parts += [causal_tables(result), audit_tables(result), selection_table(result)]
    parts.append(f"Bootstrap: {result['n_boot']} replicates, seed {result['seed']}.")
    return "\n\n".join(parts) + "\n"
