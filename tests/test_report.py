"""The report package: escaping of untrusted text in the dashboard, the results tables, the sweep plots, the
run report, and a render of both pages in headless Chromium (skipped when no Chromium is installed)."""

from __future__ import annotations

import csv
import html
import io
import random
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from safer_rm.report import (
    plot_salience,
    plot_sweep,
    render_dashboard,
    to_csv,
    to_html,
    to_text,
    write_dashboard,
    write_report,
)
from safer_rm.report.rows import metric_names

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCRIPT = '<script>document.title="PWNED"</script>'
ATTR = '"onmouseover=alert(1) x="'
IMG = "<img src=x onerror=\"document.title='PWNED2'\">"
AMP = "Tom & Jerry &amp; co"
HOSTILE = f"{SCRIPT} {ATTR} {IMG} {AMP}"
HOSTILE_TOKEN = "<b>kill</b>"
METRICS = ("Chat", "Chat Hard", "Safety", "overall", "heldout safety", "heldout chat")
TITLE = "Features of the test run"


def _context(i: int, token: str) -> dict:
    return {
        "token": token,
        "activation": 3.0 - 0.25 * i,
        "left": f"How do I\n{HOSTILE} ",
        "right": f" it? {HOSTILE}",
        "pair_id": f"pku:{i}",
        "side": "rejected" if i % 2 else "chosen",
        "position": 40 + i,
    }


def _latent(
    latent: int,
    rank: int,
    salience: float,
    selected: str | None,
    reason: str | None,
    score: float | None,
    status: str,
) -> dict:
    return {
        "latent": latent,
        "rank": rank,
        "salience": salience,
        "chosen_sum": 10.2,
        "rejected_sum": 25.1,
        "chosen_count": 30,
        "rejected_count": 80,
        "chosen_mean": 0.34,
        "rejected_mean": 0.31,
        "selected": selected,
        "reason": reason,
        "judge": {"score": score, "explanation": f"Violent verbs. {HOSTILE}", "status": status},
        "n_distinct_tokens": 4,
        "contexts": [_context(i, t) for i, t in enumerate([" kill", HOSTILE_TOKEN, " murder", SCRIPT])],
    }


@pytest.fixture(scope="module")
def features() -> dict:
    return {
        "judge": {"kind": "embedding", "model": "all-MiniLM-L6-v2", "prompt_version": "v1"},
        "normalize": "none",
        "layer": 4,
        "selection": {"safe": [12, 40], "unsafe": [7]},
        "latents": [
            _latent(7, 1, -0.41, "unsafe", None, 5.0, "ok"),
            _latent(12, 2, 0.38, "safe", None, 5.0, "ok"),
            _latent(99, 3, -0.33, None, "judge score 3 < 5", 3.0, "ok"),
            _latent(40, 4, 0.30, "safe", None, 5.0, "ok"),
            _latent(5, 5, 0.21, None, "uninterpretable: 40 distinct tokens (> 32)", None, "skipped"),
            _latent(77, 6, -0.12, None, f"no judge score (unparseable) {SCRIPT}", None, "unparseable"),
        ],
    }


def _rows(ratios: dict[str, tuple[float, ...]], n_seeds: int = 3, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def metrics() -> dict:
        return {
            m: {"mean": rng.uniform(0.4, 0.95), "std": rng.uniform(0.001, 0.03) if n_seeds > 1 else 0.0}
            for m in METRICS
        }

    rows = [
        {
            "variant": "clean",
            "mode": "clean",
            "method": None,
            "ratio": None,
            "n_seeds": n_seeds,
            "metrics": metrics(),
        }
    ]
    for mode, qs in ratios.items():
        for method in ("safer", "random", "reward_margin"):
            for q in qs:
                rows.append(
                    {
                        "variant": f"{mode}-{method}-{q}",
                        "mode": mode,
                        "method": method,
                        "ratio": q,
                        "n_seeds": n_seeds,
                        "metrics": metrics(),
                        "source_mix": {"coconot": rng.randint(1, 99), "pku-saferlhf": rng.randint(1, 99)},
                    }
                )
    return rows


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return _rows({"poison": (1.0, 5.0), "denoise": (2.0, 4.0)})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, rows, features) -> Path:
    run = tmp_path_factory.mktemp("run")
    summary = {
        "run": "test-run",
        "sae": {"fvu": 0.123, "dead_fraction": 0.01},
        "audit": {"note": SCRIPT},
        "timing": {"total_s": 1234.5, "stages": {"data": 1.5, "train": 100.25}},
        "variants": {"clean": {"ignored": 1}},
    }
    write_report(run, rows, summary, features)
    return run


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


# ---- dashboard ---------------------------------------------------------------------------------------------
def test_dashboard_escapes_untrusted_text(features, tmp_path):
    out = write_dashboard(features, tmp_path / "features.html", title=f"{TITLE} {SCRIPT}")
    page = out.read_text(encoding="utf-8")
    for raw in (SCRIPT, ATTR, IMG, AMP, HOSTILE_TOKEN, "<script", "<img", '"onmouseover', "Tom & Jerry"):
        assert raw not in page, raw
    assert html.escape(SCRIPT, quote=True) in page
    assert html.escape(AMP, quote=True) in page  # "&amp;" in the data becomes "&amp;amp;"
    assert html.escape(ATTR, quote=True) in page
    assert f"<mark>{html.escape(HOSTILE_TOKEN)}</mark>" in page
    assert "<mark> kill</mark>" in page
    assert f"<mark>{html.escape(SCRIPT)}</mark>" in page


def test_dashboard_lists_selected_sets_first_with_reasons(features):
    page = render_dashboard(features)
    pos = {lat: page.index(f'id="latent-{lat}"') for lat in (7, 12, 40, 99, 5, 77)}
    assert pos[12] < pos[40] < pos[7] < pos[99] < pos[5] < pos[77]  # S+, S-, then the others by rank
    assert page.index('id="safe"') < pos[12] and page.index('id="unsafe"') < pos[7] < page.index('id="other"')
    for text in (
        "judge score 3 &lt; 5",
        "uninterpretable: 40 distinct tokens (&gt; 32)",
        "unparseable",
        "+0.380",
        "-0.410",
        "25.100",
        "0.340",
        "pku:3",
        "rejected",
        "3.000",
        "2.250",
    ):
        assert text in page, text
    assert page.count("<mark>") == 6 * 4
    assert '<span class="nl">' in page  # a newline in a context is shown as a marker


def test_dashboard_without_selection_or_judge(tmp_path):
    feats = {
        "latents": [
            {"latent": 3, "salience": 0.2, "selected": "safe", "contexts": []},
            {"latent": 4, "salience": -0.1, "judge": None},
        ]
    }
    page = write_dashboard(feats, tmp_path / "f.html").read_text(encoding="utf-8")
    assert page.index('id="latent-3"') < page.index('id="latent-4"')
    assert "no contexts recorded" in page


# ---- tables ------------------------------------------------------------------------------------------------
def test_tables_csv_text_html(rows):
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(parsed) == len(rows)
    assert list(parsed[0])[:5] == ["variant", "mode", "method", "ratio", "n_seeds"]
    assert {"Safety", "Safety std", "heldout chat", "heldout chat std", "source_mix"} <= set(parsed[0])
    by_variant = {r["variant"]: r for r in parsed}
    for row in rows:
        got = by_variant[row["variant"]]
        for m in METRICS:
            assert float(got[m]) == pytest.approx(row["metrics"][m]["mean"])
            assert float(got[f"{m} std"]) == pytest.approx(row["metrics"][m]["std"])
    assert parsed[0]["variant"] == "clean" and parsed[0]["ratio"] == "" and parsed[0]["source_mix"] == ""

    text = to_text(rows)
    safer = next(r for r in rows if r["variant"] == "poison-safer-5.0")["metrics"]["Safety"]
    assert f"{safer['mean']:.3f} +- {safer['std']:.3f}" in text
    assert len({len(line) for line in text.splitlines()}) == 1  # aligned columns

    hostile = [
        {
            "variant": SCRIPT,
            "mode": "poison",
            "method": "safer",
            "ratio": 1.0,
            "n_seeds": 1,
            "metrics": {"Safety": {"mean": 0.5, "std": None}, "weird & new": 0.25},
        }
    ]
    table = to_html(hostile)
    assert SCRIPT not in table and html.escape(SCRIPT) in table and "weird &amp; new" in table
    assert "0.500" in table and "0.250" in table and "\u00b1" not in table  # one seed: no spread
    assert metric_names(hostile) == ["Safety", "weird & new"]


# ---- plots -------------------------------------------------------------------------------------------------
def test_plot_sweep_two_modes(tmp_path, rows):
    paths = plot_sweep(rows, tmp_path)
    names = {p.name for p in paths}
    for mode in ("poison", "denoise"):
        assert {f"{mode}_safety.png", f"{mode}_chat.png", f"{mode}_heldout_safety.png"} <= names
    assert all(_is_png(p) for p in paths)


def test_plot_sweep_single_ratio_and_missing_mode(tmp_path):
    rows = _rows({"poison": (5.0,)}, n_seeds=1)
    for row in rows:  # only the metrics a small run has
        row["metrics"] = {k: v for k, v in row["metrics"].items() if k in ("Safety", "Chat")}
    paths = plot_sweep(rows, tmp_path)
    assert sorted(p.name for p in paths) == ["poison_chat.png", "poison_safety.png"]
    assert all(_is_png(p) for p in paths)
    assert plot_sweep(rows[:1], tmp_path / "none") == []  # clean only: nothing to plot


def test_plot_salience(tmp_path, features):
    assert _is_png(plot_salience(features, tmp_path / "salience.png"))
    assert plot_salience({"latents": []}, tmp_path / "empty.png") is None


# ---- the run report ----------------------------------------------------------------------------------------
def test_report_contains_every_number_and_working_links(run_dir, rows):
    report = run_dir / "report"
    page = (report / "index.html").read_text(encoding="utf-8")
    for row in rows:
        assert html.escape(row["variant"]) in page
        for m in METRICS:
            stat = row["metrics"][m]
            assert f"{stat['mean']:.3f} \u00b1 {stat['std']:.3f}" in page, (row["variant"], m)
        for source, n in row.get("source_mix", {}).items():
            assert f">{n}<" in page and source in page
    targets = re.findall(r'(?:href|src)="([^"#]+)"', page)
    assert "features.html" in targets and "results.csv" in targets and "poison_safety.png" in targets
    for target in targets:
        assert (report / target).is_file(), target
    assert all(_is_png(report / t) for t in targets if t.endswith(".png"))
    assert SCRIPT not in page and html.escape(SCRIPT) in page  # summary text is escaped too
    assert (
        "1,234.5" in page and "timing.stages.train" not in page
    )  # nested keys are flattened below the section
    assert "stages.train" in page and "ignored" not in page
    assert (report / "results.csv").read_text(encoding="utf-8") == to_csv(rows)


def test_report_without_features_or_rows(tmp_path):
    index = write_report(tmp_path, [], {}, None)
    page = index.read_text(encoding="utf-8")
    assert "no results yet" in page and 'href="features.html"' not in page
    assert not (tmp_path / "report" / "features.html").exists()


# ---- headless Chromium -------------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--disable-dev-shm-usage",
)


def _chromium(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _screenshot(page: Path, png: Path) -> np.ndarray:
    proc = _chromium(page.resolve().as_uri(), f"--screenshot={png}", "--window-size=1280,2000")
    assert png.is_file(), f"no screenshot (rc {proc.returncode}): {proc.stderr[-2000:]}"
    assert png.stat().st_size > 20_000
    with Image.open(png) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32)


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed (scripts/install-browser.sh "
    "installs the Debian packages chromium and chromium-driver)",
)
def test_render_in_headless_chromium(run_dir, features):
    report = run_dir / "report"
    started = time.monotonic()
    for name in ("features", "index"):
        pixels = _screenshot(report / f"{name}.html", report / f"screenshot-{name}.png")
        assert pixels.shape[:2] == (2000, 1280)
        assert pixels.std() > 10, f"{name}: blank screenshot"
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, f"{name}: too few colours"

    dom = _chromium((report / "features.html").resolve().as_uri(), "--dump-dom").stdout
    assert "</html>" in dom
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title is not None and "PWNED" not in title.group(1)  # no script from the data ran
    assert "<script" not in dom and "<img" not in dom
    assert not re.search(r"<[^<>]*\son(mouseover|error)\s*=", dom)  # no event handler became an attribute
    for latent in features["latents"]:
        assert f'id="latent-{latent["latent"]}"' in dom
    assert dom.count("<mark>") == 6 * 4
    assert "&lt;script&gt;document.title" in dom

    index_dom = _chromium((report / "index.html").resolve().as_uri(), "--dump-dom").stdout
    assert "poison_safety.png" in index_dom and "<script" not in index_dom
    assert time.monotonic() - started < 60


def test_audit_table_and_plot_show_every_detector_with_intervals(tmp_path, rows):
    import numpy as np

    from safer_rm.curation.detectors import detector_metrics

    rng = np.random.default_rng(1)
    planted = [rng.random(200) < 0.05]
    safety = [rng.random(200) < 0.6]
    values = {
        "safer": [np.where(planted[0], -1.0, 1.0) + rng.normal(0, 1, 200)],
        f"probe{SCRIPT}": [rng.normal(size=200)],
    }
    audit = {
        "q": 5.0,
        "scope": "all",
        "repeats": 1,
        "planted": int(planted[0].sum()),
        "pairs": 200,
        "detectors": detector_metrics(values, planted, safety, n_boot=50),
        "cost_s": {"safer": 12.5},
        "definitions": {"safer": "SAFER score"},
    }
    index = write_report(tmp_path, rows, {"run": "r", "audit": audit})
    page = index.read_text(encoding="utf-8")
    assert "Poisoning audit" in page and "AUROC (safety)" in page and SCRIPT not in page
    v = audit["detectors"]["safer"]["all"]["auroc"]
    assert f"{v['value']:.3f}" in page and f"[{v['low']:.3f}, {v['high']:.3f}]" in page
    assert _is_png(tmp_path / "report" / "audit.png")
