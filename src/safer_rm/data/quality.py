"""Counting what is dropped or changed, per source and reason, so nothing disappears unseen."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass
class DropReport:
    """Rows read, kept and dropped (by reason) per source, plus one example location per reason."""

    read: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    dropped: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def drop(self, source: str, reason: str, where: str) -> None:
        self.dropped[source][reason] += 1
        self.examples.setdefault(f"{source}/{reason}", where)

    def total_dropped(self) -> int:
        return sum(sum(c.values()) for c in self.dropped.values())

    def to_json(self) -> dict:
        return {
            "read": dict(self.read),
            "kept": dict(self.kept),
            "dropped": {s: dict(c) for s, c in self.dropped.items() if c},
            "examples": self.examples,
            "notes": self.notes,
        }

    def lines(self) -> list[str]:
        out = []
        for source in self.read:
            reasons = self.dropped.get(source) or {}
            why = ", ".join(f"{r}={n}" for r, n in sorted(reasons.items())) or "none"
            out.append(f"{source}: read {self.read[source]}, usable {self.kept[source]}, dropped: {why}")
        out.extend(self.notes)
        return out
