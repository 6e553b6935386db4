"""safer-rm: probe reward models with sparse autoencoders (SAFER, arXiv 2507.00665).

Data flow (one sub-package per box): data -> reward -> activations -> sae -> features -> curation
-> experiment -> report. Stages are plain functions over dataclasses and run-directory paths.
"""

__version__ = "0.1.0"
