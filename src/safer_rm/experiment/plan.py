"""Which stage instances a command runs, in which order, and for each whether it is reused or rerun, and why.

A stage instance is reused when it finished, its outputs exist, its fingerprint (its config sections, its
own values and input hashes, and the fingerprints of what it needs) is unchanged, and nothing it needs has
rerun since; stages marked `cache` (deterministic caches) do not make their readers rerun when rebuilt.
Needs a stage reads `by_content` (train-rm reads its edited set from curate) are the exception: their
fingerprints stay out of its own and their rerunning alone does not rerun it; the hashes of the files it
reads from them (its `inputs`) decide, so an edited set that comes out byte-identical is not trained on again.

The runner asks the same `Planner` before every stage, after that stage's needs ran. `--dry-run` asks it
before anything ran: it agrees with a real run except that a stage whose by-content need would rerun cannot
know its inputs yet, so the plan lists it (and what reruns because of it) as run, saying it is reused if
they come out the same; the run then reuses it when they do. The plan never claims a reuse the run does
not make."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import SaferError
from .context import RunContext
from .graph import Key, Stage, diff, instance_name, instances, resolve, stage_values
from .registry import SECTION_VALUES, STAGES
from .rundir import fingerprint

Instance = tuple[Stage, Key]


@dataclass
class Decision:
    name: str
    stage: Stage
    key: Key
    run: bool
    reason: str
    fingerprint: str
    values: dict
    needs: dict = field(default_factory=dict)
    """{need instance: {"fingerprint", "started"}} as recorded with the stage when it runs."""

    def line(self, width: int) -> str:
        return f"{self.name:<{width}}  {'run' if self.run else 'reuse':<5}  {self.reason}"


class Planner:
    def __init__(self, ctx: RunContext, stages: Sequence[Stage] = STAGES):
        self.ctx = ctx
        self.stages = list(stages)
        self.by_name = {st.name: st for st in self.stages}
        self.all = instances(self.stages, ctx.cfg)
        self._fp: dict[str, str] = {}

    # ---- the graph -------------------------------------------------------------------------------------
    def needs(self, st: Stage, key: Key) -> list[Instance]:
        out = []
        for name, k in st.needs(self.ctx.cfg, key):
            if name not in self.by_name:
                raise SaferError(f"stage {st.name} needs unknown stage {name!r}")
            out.append((self.by_name[name], resolve(self.by_name[name], k, self.ctx.cfg)))
        return out

    def leaves(self) -> list[Instance]:
        """Instances nothing else needs, in declaration order: what `safer run` asks for."""
        needed = {instance_name(n.name, k) for st, key in self.all for n, k in self.needs(st, key)}
        return [(st, key) for st, key in self.all if st.instance(key) not in needed]

    def matching(self, patterns: Iterable[str]) -> list[Instance]:
        """Instances whose name matches any glob pattern, e.g. 'train-rm/poison-*/seed-1'."""
        patterns = list(patterns)
        out = [
            (st, key)
            for st, key in self.all
            if any(fnmatch.fnmatchcase(st.instance(key), p) for p in patterns)
        ]
        if not out:
            names = ", ".join(st.instance(key) for st, key in self.all[:6])
            raise SaferError(
                f"--stages {' '.join(patterns)}: matches no stage of this config (e.g. {names}, ...)"
            )
        return out

    def of_stage(self, name: str, variant: str | None = None) -> list[Instance]:
        return [
            (st, key)
            for st, key in self.all
            if st.name == name and (variant is None or key.variant == variant)
        ]

    def order(self, targets: Sequence[Instance]) -> list[Instance]:
        """The targets and everything they need, needs first (depth-first, each instance once)."""
        seen: set[str] = set()
        out: list[Instance] = []

        def visit(st: Stage, key: Key, path: tuple[str, ...]) -> None:
            name = st.instance(key)
            if name in path:
                raise SaferError(f"stage cycle: {' -> '.join((*path, name))}")
            if name in seen:
                return
            for n, k in self.needs(st, key):
                visit(n, k, (*path, name))
            seen.add(name)
            out.append((st, key))

        for st, key in targets:
            visit(st, key, ())
        return out

    # ---- fingerprints and decisions --------------------------------------------------------------------
    def fingerprint(self, st: Stage, key: Key) -> tuple[str, dict]:
        """(fingerprint, flattened settings) of an instance as the current config and inputs make it."""
        values = stage_values(st, self.ctx.cfg, key, SECTION_VALUES)
        if st.inputs is not None:
            values.update({f"input.{k}": v for k, v in st.inputs(self.ctx, key).items()})
        return self._fingerprint(st, key, values), values

    def _fingerprint(self, st: Stage, key: Key, values: dict) -> str:
        """The fingerprint of these settings and what it needs (those it reads by content aside)."""
        needs = {
            n.instance(k): self.fingerprint_of(n, k)
            for n, k in self.needs(st, key)
            if n.name not in st.by_content
        }
        return fingerprint({"values": values, "needs": needs})

    def fingerprint_of(self, st: Stage, key: Key) -> str:
        name = st.instance(key)
        if name not in self._fp:
            self._fp[name] = self.fingerprint(st, key)[0]
        return self._fp[name]

    def forget(self) -> None:
        """A stage ran: fingerprints (some read its outputs' hashes) are computed anew (`ctx.data.file_hash`
        memoises per inode, mtime and size, so a file the stage rewrote, atomically, is hashed anew)."""
        self._fp.clear()

    def outputs(self, st: Stage, key: Key) -> list:
        return [self.ctx.run.file(w, variant=key.variant, seed=key.seed) for w in st.writes]

    def decide(
        self,
        st: Stage,
        key: Key,
        reruns: set[str],
        force: set[str] = frozenset(),
        pending: bool = False,
    ) -> Decision:
        """Whether an instance is reused, and why. `reruns`: the instances this command reruns before it;
        `pending`: they have not run yet (a dry-run), so what this one reads from them by content is unknown."""
        run = self.ctx.run
        name = st.instance(key)
        fp, values = self.fingerprint(st, key)
        self._fp[name] = fp
        needs = self.needs(st, key)
        recorded_needs = {
            n.instance(k): {
                "fingerprint": self.fingerprint_of(n, k),
                "started": run.status(n.instance(k)).get("started"),
            }
            for n, k in needs
        }
        content = {n.instance(k) for n, k in needs if n.name in st.by_content}
        entry = run.status(name)

        def decision(again: bool, reason: str) -> Decision:
            return Decision(name, st, key, again, reason, fp, values, recorded_needs)

        if name in force:
            return decision(True, "asked for by name")
        if not entry:
            return decision(True, "never run")
        if entry.get("status") != "done":
            what = entry.get("error") or "unfinished (interrupted, or running elsewhere)"
            return decision(True, f"last attempt {entry.get('status')}: {what}"[:160])
        missing = [p for p in self.outputs(st, key) if not p.exists()]
        if missing:
            return decision(True, f"output {missing[0].relative_to(run.root)} missing")
        rerun = [n.instance(k) for n, k in needs if n.instance(k) in reruns and not n.cache]
        upstream = [n for n in rerun if n not in content]
        if upstream:
            return decision(True, f"upstream {', '.join(upstream)} reruns")
        old_values, old = entry.get("values", {}), entry.get("needs", {})

        def changed(values: dict) -> str:
            out = diff(old_values, values) or [
                f"upstream {n} settings changed"
                for n in recorded_needs
                if n not in content and old.get(n, {}).get("fingerprint") != recorded_needs[n]["fingerprint"]
            ]
            return "; ".join(out) or "settings changed"

        waiting = [n for n in rerun if n in content] if pending else []
        if waiting:  # a dry-run: the files it reads from them are not written yet
            as_before = _with_inputs(values, old_values)
            if self._fingerprint(st, key, as_before) != entry.get("fingerprint"):
                return decision(True, changed(as_before))
            return decision(
                True, f"upstream {', '.join(waiting)} reruns (reused if its input files come out the same)"
            )
        if entry.get("fingerprint") != fp:
            return decision(True, changed(values))
        reran = [
            n
            for (ns, _), n in zip(needs, recorded_needs)
            if not ns.cache
            and n not in content
            and old.get(n, {}).get("started") != recorded_needs[n]["started"]
        ]
        if reran:
            return decision(True, f"upstream {', '.join(reran)} reran since")
        return decision(False, f"done ({entry.get('seconds', 0):.1f} s)")

    def plan(self, targets: Sequence[Instance], force: set[str] = frozenset()) -> list[Decision]:
        """What a run of these targets would do, without doing it."""
        reruns: set[str] = set()
        out = []
        for st, key in self.order(targets):
            d = self.decide(st, key, reruns, force, pending=True)
            if d.run:
                reruns.add(d.name)
            out.append(d)
        return out


def _with_inputs(values: dict, old: dict) -> dict:
    """An instance's settings with the input hashes recorded in `old` in place of its own."""
    return {
        **{k: v for k, v in values.items() if not k.startswith("input.")},
        **{k: v for k, v in old.items() if k.startswith("input.")},
    }


def plan_text(decisions: Sequence[Decision]) -> str:
    width = max((len(d.name) for d in decisions), default=10)
    runs = sum(d.run for d in decisions)
    lines = [d.line(width) for d in decisions]
    return "\n".join([*lines, f"{runs} of {len(decisions)} stages would run"])
