"""A patch trigger whose mask is fixed and whose pattern is learned: the common part of TrojanNN and IMC.

``T(x) = (1 - m) x + m p`` with ``p = (tanh(theta) + 1) / 2`` (the pattern optimised in tanh space, so it stays
in [0, 1] without clipping), ``m`` a ``size`` x ``size`` square or a simple logo (the square's two diagonals)
at the bottom-right corner (margin 1, like BadNets) or at a fixed position ``(top, left)``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.checks import check_positive_int
from ..core.device import channels_last
from ..data import Data
from ..ml.triggers import Trigger


def patch_mask(image_shape: tuple[int, int, int], size: int, shape: str = "square",
               position: str | tuple[int, int] = "corner", margin: int = 1) -> torch.Tensor:
    """The ``(1, H, W)`` mask: a ``size`` square (or its two diagonals for ``shape="logo"``) at ``position``."""
    _, h, w = image_shape
    check_positive_int(size, "size")
    if shape not in ("square", "logo"):
        raise ValueError(f"shape must be 'square' or 'logo', got {shape!r}")
    if position == "corner":
        top, left = h - size - margin, w - size - margin
    elif isinstance(position, (tuple, list)) and len(position) == 2 and all(isinstance(v, int) for v in position):
        top, left = position
    else:
        raise ValueError(f"position must be 'corner' or a (top, left) pair of integers, got {position!r}")
    if top < 0 or left < 0 or top + size > h or left + size > w:
        raise ValueError(f"size must fit in the {h}x{w} image at position {position!r}, got size={size}")
    box = torch.ones(size, size)
    if shape == "logo":
        eye = torch.eye(size)
        box = (eye + eye.flip(1)).clamp(max=1)
    mask = torch.zeros(1, h, w)
    mask[0, top:top + size, left:left + size] = box
    return mask


class LearnedPatch(Trigger):
    """A fixed-mask trigger with the pattern parametrised as ``(tanh(theta) + 1) / 2``; ``theta`` is its state."""

    def __init__(self, image_shape: tuple[int, int, int], size: int, shape: str = "square",
                 position: str | tuple[int, int] = "corner", seed: int = 0) -> None:
        mask = patch_mask(image_shape, size, shape, position)
        self.size, self.shape, self.position, self.seed = size, shape, position, seed
        self.theta = 0.5 * torch.randn(image_shape, generator=torch.Generator().manual_seed(40_000 + seed))
        super().__init__(mask, self._pattern(self.theta))

    @staticmethod
    def _pattern(theta: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(theta) + 1) / 2

    def set_theta(self, theta: torch.Tensor) -> None:
        self.theta = theta.detach().float().cpu().clone()
        self.pattern = self._pattern(self.theta)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"theta": self.theta.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        theta = state.get("theta")
        if not isinstance(theta, torch.Tensor) or tuple(theta.shape) != self.image_shape or set(state) != {"theta"}:
            raise ValueError(f"state must hold exactly 'theta' of shape {self.image_shape}, got "
                             f"{ {k: tuple(v.shape) for k, v in state.items()} }")
        self.set_theta(theta)

    def _triggered(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        m = self.mask.to(x.device, x.dtype)
        return (1 - m) * x + m * self._pattern(theta)

    def optimise(self, model: nn.Module, data: Data, loss_fn, steps: int, lr: float, batch_size: int,
                 seed: int) -> list[float]:
        """``steps`` Adam steps on ``theta`` minimising ``loss_fn(model, T(x))`` over random batches of ``data``;
        the model is frozen (eval mode, no gradient into its weights) and restored to its mode after."""
        dev = next(model.parameters()).device
        was_training = model.training
        model.eval()
        theta = self.theta.to(dev).clone().requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=lr)
        g = torch.Generator().manual_seed(seed)
        losses = []
        try:
            with channels_last(model):  # NHWC convolutions for the backward passes
                for _ in range(steps):
                    idx = torch.randint(0, len(data), (min(batch_size, len(data)),), generator=g)
                    loss = loss_fn(model, self._triggered(theta, data.x[idx].to(dev)))
                    if not torch.isfinite(loss):
                        raise ValueError(f"{self.name} trigger optimisation diverged (loss={float(loss)}); lower lr")
                    (grad,) = torch.autograd.grad(loss, [theta])
                    theta.grad = grad
                    opt.step()
                    losses.append(float(loss.detach()))
        finally:
            model.train(was_training)
        self.set_theta(theta)
        return losses

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, shape={self.shape!r}, position={self.position!r})"
