"""The results of a run as Markdown, generated from its run directory (summary.json, manifest.json): what a
results page in the docs shows, so that no results table is ever typed by hand. Every table says the commit,
the machine, the seeds and the evaluation sizes it came from; `safer report CONFIG --markdown FILE` writes it
(and every report writes `report/results.md`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from .page import DASH, fmt3, fmt_ratio
from .rows import compared_metrics, comparisons, metric_interval, metric_names, metric_stat, sorted_rows
from .tables import Rows, sizes_text


def table(header: list[str], lines: list[list[str]]) -> str:
    """A Markdown table (no trailing newline); a `|` inside a cell is escaped."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines]
    return "\n".join(out)


def _table(header: list[str], lines: list[list[str]]) -> str:
    return table(header, lines) + "\n"


def _accuracy(row: Mapping[str, Any], metric: str) -> str:
    mean, _ = metric_stat(row, metric)
    if mean is None:
        return DASH
    ci = metric_interval(row, metric)
    return f"{fmt3(mean)} [{fmt3(ci[0])}, {fmt3(ci[1])}]" if ci else fmt3(mean)


def _difference(d: Mapping[str, Any] | None) -> str:
    if not d or d.get("diff") is None:
        return DASH
    cell = f"{100 * d['diff']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
    return f"**{cell}**" if d.get("excludes_zero") else cell


def _interval(v: Mapping[str, Any] | None) -> str:
    if not isinstance(v, Mapping) or v.get("value") is None:
        return DASH
    if v.get("low") is None:
        return fmt3(v["value"])
    return f"{fmt3(v['value'])} [{fmt3(v['low'])}, {fmt3(v['high'])}]"


def sae_lines(sae: Mapping[str, Any]) -> list[str]:
    if sae.get("fvu") is None:
        return []
    return [
        "## SAE",
        "",
        f"Layer {sae.get('layer')}, {sae.get('num_latents')} latents, k = {sae.get('k')}: held-out FVU "
        f"{sae['fvu']:.3f}, dead latents {100 * sae.get('dead_fraction', 0):.1f} %, pair accuracy with the "
        f"reconstruction spliced into the RM {fmt3(sae.get('splice_accuracy'))} (the RM itself "
        f"{fmt3(sae.get('clean_accuracy'))}, {sae.get('fidelity_pairs')} held-out pairs).",
        "",
    ]


def causal_lines(causal: Mapping[str, Any]) -> list[str]:
    """Per scale: each group's accuracy base -> edited, the paired differences against base and against the
    random latent sets, and the specificity ratio."""
    if not causal.get("scales"):
        return []
    out = [
        "## Causal test",
        "",
        f"{causal.get('n_latents')} selected latents scaled inside the clean RM (reconstruction error kept), against "
        f"the unedited RM and {causal.get('draws')} random sets of as many latents; differences in points with 95 % "
        "paired intervals, bold where they exclude 0.",
        "",
    ]
    groups = causal.get("groups") or {}
    for cond in causal["scales"]:
        lines = [
            [
                name,
                str((groups.get(name) or {}).get("n", DASH)),
                f"{_interval(((groups.get(name) or {}).get('base') or {}).get('accuracy'))} -> "
                f"{_interval(c.get('accuracy'))}",
                _difference(c.get("accuracy_diff")),
                _difference(c.get("versus_random")),
            ]
            for name, c in (cond.get("groups") or {}).items()
        ]
        spec, rand = cond.get("specificity"), cond.get("random_specificity")
        out += [
            f"Scaled x {cond.get('scale'):g}; specificity ratio "
            f"{DASH if spec is None else f'{spec:.2f}'} (random sets: {DASH if rand is None else f'{rand:.2f}'}).",
            "",
            _table(
                ["group", "pairs", "accuracy base -> edited", "edited - base", "selection - random"], lines
            ),
        ]
    return out


def audit_lines(audit: Mapping[str, Any]) -> list[str]:
    detectors = audit.get("detectors") or {}
    if not detectors:
        return []
    first = next(iter(detectors.values()))
    safe = (first.get("safety") or {}).get("auroc") or {}
    lines = [
        [
            name,
            *(_interval((d.get(pop) or {}).get(m)) for pop in ("all", "safety") for m in ("auroc", "ap")),
            str((audit.get("cost_s") or {}).get(name, DASH)),
        ]
        for name, d in detectors.items()
    ]
    return [
        "## Poisoning audit",
        "",
        f"{audit.get('planted')} of {audit.get('pairs')} training pairs flipped at random among {audit.get('scope')} "
        f"pairs, {audit.get('repeats')} repeat(s); safety pairs: {safe.get('n')}, {safe.get('positives')} of them "
        "planted. Which detector ranks the flips first, with 95 % bootstrap intervals over pairs; chance: AUROC 0.5, "
        "AP the planted share.",
        "",
        _table(["detector", "AUROC, all", "AP, all", "AUROC, safety", "AP, safety", "seconds"], lines),
    ]


def _most_used(manifest: Mapping[str, Any], field: str, missing: str | None) -> list[str]:
    """The values of `field` over the run's finished stages, most used first (`missing` stands for a stage
    without it; None leaves such stages out)."""
    found = [
        e.get(field) or missing for e in (manifest.get("stages") or {}).values() if e.get("status") == "done"
    ]
    counts = Counter(v for v in found if v is not None)
    return [v for v, _ in counts.most_common()]


def commits(manifest: Mapping[str, Any]) -> list[str]:
    """The source commits the run's finished stages were computed with, most used first."""
    return _most_used(manifest, "commit", "not recorded")


def machines(manifest: Mapping[str, Any]) -> list[dict]:
    """The machines the run's finished stages ran on (the manifest's `machines`), most used first."""
    known = manifest.get("machines") or {}
    return [known[k] for k in _most_used(manifest, "machine", None) if k in known]


def _machine_text(box: Mapping[str, Any]) -> str:
    parts = (
        box.get("gpu") and f"{box.get('gpus', 1)} x {box['gpu']}",
        box.get("cpu"),
        box.get("cores") and f"{box['cores']} cores",
        "CPU with bf16 instructions" if box.get("cpu_bf16") else "CPU without bf16 instructions",
    )
    return ", ".join(str(x) for x in parts if x)


def provenance_lines(summary: Mapping[str, Any], manifest: Mapping[str, Any], seeds: list[int]) -> list[str]:
    found = commits(manifest)
    boxes = machines(manifest)
    run_machine = summary.get("machine") or {}
    versions = manifest.get("versions") or {}
    setting = ", ".join(
        str(x)
        for x in (
            f"bf16 {'on' if run_machine.get('bf16') else 'off'}",
            run_machine.get("threads") and f"{run_machine['threads']} threads",
            versions.get("torch") and f"torch {versions['torch']}",
            versions.get("transformers") and f"transformers {versions['transformers']}",
        )
        if x
    )
    where = "; ".join(_machine_text(b) for b in boxes) or "not recorded"
    return [
        f"- commit: {', '.join(found) if found else 'not recorded'}"
        + (" (stages computed with more than one commit)" if len(found) > 1 else ""),
        f"- machine: {where}"
        + (" (stages ran on more than one machine)" if len(boxes) > 1 else "")
        + f"; {setting}",
        f"- seeds: {', '.join(map(str, seeds))} (each variant's reward model trained once per seed; intervals over "
        + ("seeds, then evaluation pairs)" if len(seeds) > 1 else "evaluation pairs)"),
        f"- command: `{manifest.get('command', '')}`",
    ]


def to_markdown(
    rows: Rows, summary: Mapping[str, Any], manifest: Mapping[str, Any], seeds: list[int], regenerate: str
) -> str:
    """The accuracy table (mean, 95 % interval), the evaluation sizes, the paired differences in points
    (bold where the interval excludes 0) and the run's time, under the provenance of the numbers."""
    name = summary.get("run", "run")
    out = [
        f"# Results: {name}",
        "",
        f"Generated from the run directory by `safer report`; do not edit by hand. Regenerate: `{regenerate}`",
        "",
        *provenance_lines(summary, manifest, seeds),
        "",
    ]
    metrics = metric_names(rows)
    if not rows:
        return "\n".join([*out, "No results yet.", ""])
    out += [
        "## Accuracy",
        "",
        "Mean over seeds with its 95 % bootstrap interval"
        + (" (seeds, then pairs)." if len(seeds) > 1 else " over evaluation pairs (one seed: not a result)."),
        "",
        _table(
            ["variant", "mode", "method", "ratio", "seeds", *metrics],
            [
                [
                    str(r.get("variant", "")),
                    str(r.get("mode") or ""),
                    str(r.get("method") or DASH),
                    fmt_ratio(r.get("ratio")),
                    str(r.get("n_seeds") or DASH),
                    *(_accuracy(r, m) for m in metrics),
                ]
                for r in sorted_rows(rows)
            ],
        ),
        f"Evaluation pairs: {sizes_text(rows)}.",
        "",
    ]
    found = comparisons(rows)
    if found:
        compared = compared_metrics(rows)
        out += [
            "## Differences",
            "",
            "Points (accuracy x 100), variant minus the one named, on the same pairs and seeds, with the 95 % paired "
            "bootstrap interval; bold where it excludes 0.",
            "",
            _table(
                ["variant", "minus", *compared],
                [
                    [str(r.get("variant", "")), other, *(_difference(d.get(m)) for m in compared)]
                    for r, other, d in found
                ],
            ),
        ]
    out += sae_lines(summary.get("sae") or {})
    out += causal_lines(summary.get("causal") or {})
    out += audit_lines(summary.get("audit") or {})
    timing = summary.get("timing") or {}
    if timing.get("total_s") is not None:
        largest = ", ".join(timing.get("largest") or [])
        out += [f"Stages took {timing['total_s']:.0f} s in all (largest: {largest}).", ""]
    return "\n".join(out)
