"""The feature dashboard: selected latents first (safe set, unsafe set), then the other examined latents,
each with salience, counts on each side, the judge's score and explanation, why it was not selected, and its
contexts with the activated token highlighted. All dataset and judge text is escaped."""

from __future__ import annotations

from html import escape
from pathlib import Path

from ..io import write_text
from .style import CSS


def _e(value) -> str:
    return escape(str(value), quote=True)


def _latent(row: dict) -> str:
    judge = row.get("judge") or {}
    score = judge.get("score")
    selected = row.get("selected")
    parts = [f"<div class='latent {_e(selected or '')}' id='latent-{int(row['latent'])}'>",
             f"<b>latent {int(row['latent'])}</b> &middot; rank {int(row['rank'])} &middot; "
             f"salience {row['salience']:+.4f}" + (f" &middot; <b>selected ({_e(selected)})</b>" if selected else ""),
             f"<div class='meta'>chosen: sum {row['chosen_sum']:.3g}, active {row['chosen_count']}, mean "
             f"{row['chosen_mean']:.3g} &middot; rejected: sum {row['rejected_sum']:.3g}, active "
             f"{row['rejected_count']}, mean {row['rejected_mean']:.3g} &middot; distinct tokens "
             f"{row.get('n_distinct_tokens', 0)}</div>",
             f"<div class='meta'>judge: {'-' if score is None else f'{score:g}'} ({_e(judge.get('status', ''))}) "
             f"<span class='expl'>{_e(judge.get('explanation', ''))}</span></div>"]
    if row.get("reason"):
        parts.append(f"<div class='why'>not selected: {_e(row['reason'])}</div>")
    for c in row.get("contexts", []):
        parts.append(f"<div class='ctx'><span class='act'>{c['activation']:.3f}</span>{_e(c['left'])}"
                     f"<mark>{_e(c['token'])}</mark>{_e(c['right'])} <span class='meta'>[{_e(c.get('pair_id', ''))}, "
                     f"{_e(c.get('side', ''))}]</span></div>")
    parts.append("</div>")
    return "\n".join(parts)


def render_dashboard(features: dict, title: str = "SAFER feature dashboard") -> str:
    latents = features.get("latents", [])
    safe = [r for r in latents if r.get("selected") == "safe"]
    unsafe = [r for r in latents if r.get("selected") == "unsafe"]
    rest = [r for r in latents if not r.get("selected")]
    judge = features.get("judge", {})
    body = [f"<h1>{_e(title)}</h1>",
            f"<p class='meta'>layer {_e(features.get('layer', '?'))} &middot; salience normalisation "
            f"{_e(features.get('normalize', 'none'))} &middot; judge {_e(judge.get('kind', ''))} "
            f"{_e(judge.get('model', ''))} (prompt {_e(judge.get('prompt_version', ''))}) &middot; "
            f"{len(safe)} safe + {len(unsafe)} unsafe selected of {len(latents)} examined</p>"]
    for heading, rows in ((f"Safe set S+ ({len(safe)}): fire more on chosen responses", safe),
                          (f"Unsafe set S- ({len(unsafe)}): fire more on rejected responses", unsafe),
                          (f"Other examined latents ({len(rest)})", rest)):
        body.append(f"<h2>{_e(heading)}</h2>")
        body.extend(_latent(r) for r in rows)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")


def write_dashboard(features: dict, out_path: str | Path, title: str = "SAFER feature dashboard") -> Path:
    write_text(out_path, render_dashboard(features, title))
    return Path(out_path)
