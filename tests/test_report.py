from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from safer_rm.report import render_dashboard, text_table, to_csv, write_report

HOSTILE = "<script>alert(1)</script> \"onmouseover=x & <b>"


def features_doc() -> dict:
    ctx = {"token": "<kill>", "activation": 3.25, "left": HOSTILE, "right": " & more", "pair_id": "pku:1",
           "side": "rejected", "position": 7}
    latents = [{"latent": i, "rank": i + 1, "salience": s, "chosen_sum": 1.0, "rejected_sum": 2.0,
                "chosen_count": 3, "rejected_count": 4, "chosen_mean": 0.3, "rejected_mean": 0.5,
                "selected": sel, "reason": None if sel else "judge score 2 < 5",
                "judge": {"score": 5.0 if sel else 2.0, "explanation": HOSTILE, "status": "ok"},
                "n_distinct_tokens": 2, "contexts": [ctx] * 2}
               for i, (s, sel) in enumerate([(-0.4, "unsafe"), (0.3, "safe"), (0.1, None)])]
    return {"judge": {"kind": "embedding", "model": "MiniLM", "prompt_version": "v1"}, "normalize": "none",
            "layer": 5, "selection": {"safe": [1], "unsafe": [0]}, "latents": latents}


ROWS = [
    {"variant": "clean", "mode": "clean", "method": None, "ratio": None, "n_seeds": 1,
     "metrics": {"Safety": {"mean": 0.6123, "std": 0.0}, "Chat": {"mean": 0.7011, "std": 0.0},
                 "heldout safety": {"mean": 0.7456, "std": 0.0}}},
    *[{"variant": f"{mode}-{m}-{r}", "mode": mode, "method": m, "ratio": r, "n_seeds": 2,
       "metrics": {"Safety": {"mean": 0.5 + i / 100, "std": 0.01}, "Chat": {"mean": 0.6 + i / 200, "std": 0.02},
                   "heldout safety": {"mean": 0.55, "std": 0.0}},
       "source_mix": {"coconot": 3, "pku": 1}}
      for i, (mode, m, r) in enumerate((mo, me, ra) for mo in ("poison", "denoise")
                                       for me in ("safer", "random", "reward_margin") for ra in (1.0, 5.0))],
]


def test_dashboard_escapes_untrusted_text():
    html = render_dashboard(features_doc())
    assert HOSTILE not in html and "<script>" not in html and "<kill>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&quot;onmouseover=x &amp;" in html
    assert "<mark>&lt;kill&gt;</mark>" in html
    assert html.index("Safe set") < html.index("latent-1") < html.index("Unsafe set") < html.index("latent-0")


def test_report_contains_every_number_and_plots(tmp_path):
    index = write_report(tmp_path, ROWS, {"run": "t", "sae": {"fvu": 0.1234}, "audit": {"auroc_safer": 0.8766}},
                         features_doc())
    html = index.read_text()
    for row in ROWS:
        for metric in row["metrics"].values():
            assert f"{metric['mean']:.3f}" in html
    assert "0.123" in html and "0.877" in html and "coconot: 3" in html
    for name in ("features.html", "poison_safety.png", "denoise_chat.png", "poison_heldout_safety.png",
                 "salience.png", "results.csv"):
        assert (tmp_path / "report" / name).is_file(), name
        if name.endswith(".png"):
            assert (tmp_path / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "poison-safer-1.0" in to_csv(ROWS) and "0.612 " in text_table(ROWS) + " "


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (Debian: chromium chromium-driver)")
def test_dashboard_renders_in_headless_chromium(tmp_path):
    from matplotlib import image

    write_report(tmp_path, ROWS, {"run": "t"}, features_doc())
    page = tmp_path / "report" / "features.html"
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "dashboard.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri()],
                   check=True, timeout=60, capture_output=True)
    pixels = image.imread(shot)
    assert shot.stat().st_size > 10_000 and pixels.shape[0] >= 1000 and float(np.std(pixels)) > 0.02
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], check=True, timeout=60, capture_output=True,
                         text=True).stdout
    assert 'id="latent-0"' in dom and 'id="latent-2"' in dom and "<script>" not in dom
    assert "<mark>&lt;kill&gt;</mark>" in dom
