"""Reading and re-entering a transformer at a block boundary, for any Hugging Face model whose blocks
take the hidden states as their first argument and return them (transformers >= 5).

Convention: layer L is the residual stream after block L (1-based), the same as
`output_hidden_states[L]`; layer 0 is the embedding output.

- `stop_at(model, L)`: capture layer L and stop the forward pass there (blocks above are not computed).
- `resume_from(model, L)`: run the model with layer L given (blocks 1..L are skipped), so that the upper
  blocks and the head can be trained or evaluated over cached lower-layer states.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class StopForward(Exception):
    """Raised by a hook to end a forward pass early; carries the captured hidden states."""

    def __init__(self, hidden: torch.Tensor):
        self.hidden = hidden
        super().__init__("forward stopped at the requested layer")


def transformer_blocks(model) -> torch.nn.ModuleList:
    """The list of transformer blocks of a Hugging Face model (the ModuleList as long as the layer count of
    its text config). In a multimodal model (Gemma 3) the vision tower's list can be as long: the list
    nearest to the input embeddings (longest common module path) is the language model's."""
    n = getattr(model.config.get_text_config(), "num_hidden_layers", None)
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList) and len(module) == n
    ]
    if not found:
        raise ValueError(f"cannot find the {n} transformer blocks of {type(model).__name__}")
    if len(found) > 1:
        emb = model.get_input_embeddings()
        at = next((name for name, module in model.named_modules() if module is emb), "").split(".")

        def shared(name: str) -> int:
            parts = name.split(".")
            return next((i for i, (a, b) in enumerate(zip(parts, at)) if a != b), min(len(parts), len(at)))

        found.sort(key=lambda item: -shared(item[0]))  # stable: ties keep the first list, as before
    return found[0][1]


def num_layers(model) -> int:
    return len(transformer_blocks(model))


def _first_tensor(value):
    return value[0] if isinstance(value, tuple | list) else value


@contextlib.contextmanager
def stop_at(model, layer: int) -> Iterator[None]:
    """Within the block, a forward pass raises `StopForward` carrying layer `layer` ([batch, seq, d])."""
    blocks = transformer_blocks(model)
    if not 0 <= layer <= len(blocks):
        raise ValueError(f"layer {layer} out of range 0..{len(blocks)}")
    if layer == 0:

        def pre_hook(_module, args, kwargs):
            raise StopForward(args[0] if args else kwargs["hidden_states"])

        handle = blocks[0].register_forward_pre_hook(pre_hook, with_kwargs=True)
    else:

        def hook(_module, _args, output):
            raise StopForward(_first_tensor(output))

        handle = blocks[layer - 1].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def hidden_at(model, layer: int, **inputs) -> torch.Tensor:
    """Layer `layer` for a batch, computing only the blocks up to it."""
    with stop_at(model, layer):
        try:
            model(**inputs)
        except StopForward as stop:
            return stop.hidden
    raise RuntimeError("the forward pass never reached the requested layer")


class Resume:
    """Skips blocks 1..layer and substitutes the given layer-`layer` states at their output. The skipped
    blocks keep their parameters (so `save_pretrained` still writes them) but their forward is replaced
    by a pass-through while this object is active."""

    def __init__(self, model, layer: int):
        self.model, self.layer = model, layer
        self.blocks = list(transformer_blocks(model))[:layer]
        self.pending: torch.Tensor | None = None

    def _passthrough(self, *args, **kwargs):
        return args[0] if args else kwargs["hidden_states"]

    def _substitute(self, *args, **kwargs):
        if self.pending is None:
            raise RuntimeError("resume_from: no cached hidden states were provided for this forward pass")
        hidden = args[0] if args else kwargs["hidden_states"]
        if self.pending.shape[:2] != hidden.shape[:2]:
            raise RuntimeError(
                f"cached states {tuple(self.pending.shape)} do not fit the batch {tuple(hidden.shape)}"
            )
        return self.pending.to(dtype=hidden.dtype, device=hidden.device)

    def __enter__(self) -> Resume:
        for block in self.blocks[:-1]:
            block.forward = self._passthrough
        if self.blocks:
            self.blocks[-1].forward = self._substitute
        return self

    def __exit__(self, *exc) -> None:
        for block in self.blocks:
            if "forward" in block.__dict__:
                del block.forward
        self.pending = None

    @contextlib.contextmanager
    def feed(self, hidden: torch.Tensor) -> Iterator[None]:
        """Use `hidden` as layer `layer` for the forward passes inside the block."""
        self.pending = hidden
        try:
            yield
        finally:
            self.pending = None
