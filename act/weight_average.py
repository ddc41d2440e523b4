"""An exponential moving average of a model's weights (act-train --ema).

Checkpoints, validation and rollouts use the average, so where a time budget stops a run matters
less (BENCHMARKS.md, "Weight averaging").
"""

from __future__ import annotations


class WeightAverage:
    """An exponential moving average of a model's weights, kept in a copy of the model.

    The decay ramps up as min(decay, (1 + step) / (10 + step)) so the first steps' random weights
    fade out quickly. Buffers that are not floating point are copied."""

    def __init__(self, model, decay: float):
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        # The optimizer updates the trained tensors in place, so the pairs are found once.
        pairs = list(zip(self.model.state_dict().values(), model.state_dict().values()))
        self._floats = ([a for a, b in pairs if a.is_floating_point()],
                        [b.detach() for a, b in pairs if a.is_floating_point()])
        self._others = [(a, b) for a, b in pairs if not a.is_floating_point()]

    def update(self, step: int) -> None:
        """Fold in the trained weights after optimizer step ``step`` (0-based)."""
        import torch

        decay = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(*self._floats, 1.0 - decay)
            for a, b in self._others:
                a.copy_(b)
