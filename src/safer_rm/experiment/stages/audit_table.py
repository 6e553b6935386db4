"""The poisoning audit's result (audit.json) as a table (audit_detectors.csv): one row per detector and
population."""

from __future__ import annotations


def audit_rows(result: dict) -> list[dict]:
    """One row per (detector, population): every metric with its interval, and the detector's cost."""
    rows = []
    for name, pops in result["detectors"].items():
        for pop, metrics in pops.items():
            row = {"detector": name, "pairs": pop, "cost_s": result["cost_s"].get(name)}
            for m, v in metrics.items():
                row.update({m: v["value"], f"{m}_low": v["low"], f"{m}_high": v["high"]})
            row["n"] = metrics["auroc"]["n"]
            row["positives"] = metrics["auroc"]["positives"]
            row["repeats"] = metrics["auroc"]["seeds"]
            rows.append(row)
    return rows
