"""Files safer-rm writes beside a reward model's weights (light: read by the planner before torch is imported)."""

RENDER_FILE = "safer_render.json"
"""How texts are rendered for it and how its frozen blocks run (`frozen_layers`, `frozen_bf16`)."""
EXISTING_FILE = "safer_existing.json"
"""In a run's rm/ folder: the existing reward model (`model.reward_model`) that folder stands for."""
