"""Plots of the sweep: Safety, Chat and held-out safety accuracy against the edit ratio, one line per method,
for poisoning and for denoising, with the clean model as a dashed line and std over seeds as error bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..io import atomic_path  # noqa: E402

PANELS = [("Safety", "safety"), ("Chat", "chat"), ("heldout safety", "heldout_safety")]
COLORS = {"safer": "#c0392b", "random": "#7f8c8d", "reward_margin": "#2471a3"}


def plot_sweep(rows: list[dict], out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = next((r for r in rows if r.get("mode") == "clean"), None)
    written = []
    for mode in ("poison", "denoise"):
        mode_rows = [r for r in rows if r.get("mode") == mode]
        if not mode_rows:
            continue
        for metric, slug in PANELS:
            if not any(metric in r.get("metrics", {}) for r in mode_rows):
                continue
            fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=110)
            for method in sorted({r["method"] for r in mode_rows}):
                pts = sorted((r["ratio"], r["metrics"][metric]["mean"], r["metrics"][metric].get("std") or 0.0)
                             for r in mode_rows if r["method"] == method and metric in r["metrics"])
                if not pts:
                    continue
                xs, ys, es = zip(*pts)
                ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method, color=COLORS.get(method))
            if clean is not None and metric in clean.get("metrics", {}):
                ax.axhline(clean["metrics"][metric]["mean"], ls="--", color="black", lw=1, label="clean")
            ax.set_xlabel(f"{'flipped' if mode == 'poison' else 'removed'} pairs (% of training set)")
            ax.set_ylabel(f"{metric} accuracy")
            ax.set_title(f"{'Poisoning' if mode == 'poison' else 'Denoising'}: {metric}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            path = out_dir / f"{mode}_{slug}.png"
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png")
            plt.close(fig)
            written.append(path)
    return written


def plot_salience(features: dict, path: str | Path) -> Path:
    """Salience of the examined latents by rank, selected ones highlighted."""
    latents = sorted(features.get("latents", []), key=lambda r: r["rank"])
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=110)
    colors = ["#27ae60" if r["selected"] == "safe" else "#c0392b" if r["selected"] == "unsafe" else "#bdc3c7"
              for r in latents]
    ax.bar(range(len(latents)), [r["salience"] for r in latents], color=colors, width=1.0)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("latents by |salience| (green: selected safe, red: selected unsafe)")
    ax.set_ylabel("salience")
    ax.set_title("Salience of the examined latents")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
