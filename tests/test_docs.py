"""The user guide holds together: every relative link in the README and docs/ names a file of the repository
(and a heading of it, for `file.md#anchor`), and the results page is the generated output of `safer report`."""

from __future__ import annotations

import re

from helpers import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path) -> set[str]:
    return {
        _anchor(line.lstrip("#"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }


def test_relative_links_name_files_and_headings():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    bad = []
    for page in pages:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve()
            if not path.is_file():
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not bad, "\n".join(bad)


def test_results_page_is_generated_by_safer_report():
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert "Generated from the run directory by `safer report`; do not edit by hand." in text
    assert "- commit: " in text and "- machine: " in text and "- seeds: " in text
