"""The thin runner: for each stage instance a command asks for (needs first), ask the planner whether it can
be reused; if not, take its lock, open its manifest entry, run its function (rank 0 alone where the stage says
so), record its info, and let go. Everything about the stages themselves is in registry.py."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence

from .. import distributed
from ..errors import SaferError
from .context import RunContext
from .disk import disk_measured
from .graph import Stage
from .locks import StageLock
from .plan import Decision, Instance, Planner
from .provenance import machine, machine_key, source_commit
from .resources import measured
from .rundir import crash_hook

log = logging.getLogger(__name__)
stage_log = logging.getLogger("safer_rm.stages")  # one line per stage: what the run's log.txt keeps
start_log = logging.getLogger("safer_rm.stages.start")  # the terminal's "started" lines


class Runner:
    def __init__(self, ctx: RunContext, stages: Sequence[Stage] | None = None, label: str = ""):
        self.ctx = ctx
        self.label = label  # a sub-run's stages are logged as <sub-run folder>/<stage>
        ctx.subrun = lambda sub, names: Runner(sub, stages, f"{label}{sub.run.root.name}/").run_names(names)
        self.planner = Planner(ctx) if stages is None else Planner(ctx, stages)
        self.reruns: set[str] = set()

    def run(self, targets: Sequence[Instance], force: set[str] = frozenset()) -> list[Decision]:
        """Run the targets and what they need; returns the decisions taken, in run order."""
        self.ctx.run.save()
        return [self.step(st, key, force) for st, key in self.planner.order(targets)]

    def run_names(self, names: Sequence[str]) -> list[Decision]:
        return self.run([inst for name in names for inst in self.planner.of_stage(name)])

    def run_all(self) -> list[Decision]:
        return self.run(self.planner.leaves())

    def step(self, st: Stage, key, force: set[str]) -> Decision:
        d = self.decide(st, key, force)
        if not d.run:
            return d
        lock = StageLock(self.ctx.run.root, d.name) if self.ctx.main else None
        error = None
        if lock is not None:
            try:
                lock.acquire()
            except SaferError as err:  # held by a live process: refused at once
                error = err
        error = distributed.broadcast(str(error) if error else None)  # the ranks of a job are one holder
        if error:
            raise SaferError(error)
        try:
            self.ctx.run.refresh()  # another process may have finished it meanwhile
            d = self.decide(st, key, force)
            if d.run:
                self.execute(d)
        finally:
            if lock is not None:
                lock.release()
        return d

    def decide(self, st: Stage, key, force: set[str]) -> Decision:
        # its needs ran already (not pending): what it reads from them by content is judged by its hashes
        d = self.planner.decide(st, key, self.reruns, force)
        d.run = distributed.broadcast(d.run)  # one decision for all ranks
        return d

    def execute(self, d: Decision) -> None:
        run, started = self.ctx.run, time.time()
        crash_hook(d.name)
        # the fingerprint is known while it runs: a stage may key what it resumes from on it (checkpoints)
        run.record(d.name, {"status": "running", "started": started, "fingerprint": d.fingerprint})
        run.save()
        start_log.info("stage %s%s: started (%s)", self.label, d.name, d.reason)
        try:
            disk_watch = disk_measured(run.root) if self.ctx.main else contextlib.nullcontext({})
            with measured() as memory, disk_watch as disk:
                info = None if d.stage.rank0 and not self.ctx.main else d.stage.run(self.ctx, d.key)
        except BaseException as err:
            run.record(
                d.name,
                {
                    "status": "failed",
                    "started": started,
                    "seconds": round(time.time() - started, 3),
                    "error": f"{type(err).__name__}: {err}".splitlines()[0][:500],
                },
            )
            run.save()
            stage_log.info(
                "stage %s%s: failed after %.1f s (%s)", self.label, d.name, time.time() - started, d.reason
            )
            raise
        described = machine()
        host = machine_key(described)
        run.record_machine(host, described)
        entry = {
            "status": "done",
            "started": started,
            "seconds": round(time.time() - started, 3),
            **{k: v for k, v in memory.items() if v is not None},
            **disk,
            "commit": source_commit(),
            "machine": host,
            "info": info or {},
            "fingerprint": d.fingerprint,
            "values": d.values,
            "needs": d.needs,
        }
        run.record(d.name, entry)
        run.save()
        distributed.barrier()  # the stage's artifacts are on disk before any rank goes on
        self.reruns.add(d.name)
        self.planner.forget()
        stage_log.info(
            "stage %s%s: done in %.1f s (ran because: %s)", self.label, d.name, entry["seconds"], d.reason
        )
