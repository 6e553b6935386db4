"""The pipeline: each stage reads artifacts of the run directory and writes new ones; `run_all` chains them.
Finished stages whose inputs and settings are unchanged are skipped on `--resume`."""

from __future__ import annotations

from .analysis import AnalysisStages
from .base import CLEAN, PipelineBase, pick_device
from .sweep import SweepStages


class Pipeline(SweepStages, AnalysisStages, PipelineBase):
    """Every stage of a run; `run_all` chains them (see base, analysis and sweep for the stages)."""

    def run_all(self) -> dict:
        self.run.save()
        self.data()
        for seed in self.cfg.run.seeds:
            self.evaluate(CLEAN, seed)
        self.features()
        self.score()
        self.curate()
        for name in self.variant_names()[1:]:
            for seed in self.cfg.run.seeds:
                self.evaluate(name, seed)
        if self.cfg.causal.enabled:
            self.causal()
        if self.cfg.audit.enabled:
            self.audit()
        return self.summary()




__all__ = ["CLEAN", "Pipeline", "pick_device"]
