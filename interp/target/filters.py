"""Looking inside conv1's filters the way §3.1 did: weights, activation maximisation, attribution.

§3.1: "Applying weight and filter visualization and deep dream (Mordvintsev, Olah, and Tyka 2015)
on the target's first convolutional layer, we extracted a set of human interpretable features".

- `filter_weights`: the eight 9×9 kernels.
- `dream`: activation maximisation, one 28×28 input per filter, optimised by gradient ascent.
- `attribute`: Captum attribution of one filter's activation at one pooled position to the
  input pixels of a given image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from interp.target.activations import single_thread
from interp.target.cnn import TargetCNN, to_input

N_FILTERS = 8
SIDE = 14
"""Side of a pooled conv1 map."""




def filter_weights(model: TargetCNN) -> np.ndarray:
    """conv1 kernels as float32 [8, 9, 9] (input channel 0; MNIST is grey-scale)."""
    return model.conv1[0].weight.detach()[:, 0].cpu().numpy().astype(np.float32)


@dataclass(frozen=True)
class DreamConfig:
    """How `dream` optimises its inputs."""

    objective: Literal["mean", "centre"] = "mean"
    """"mean": the filter's response over the whole map (a texture of its pattern);
    "centre": its response at the centre pixel only (what one receptive field wants)."""
    steps: int = 64
    """Gradient-ascent steps (Adam)."""
    lr: float = 0.08
    """Adam step size, in pixel units of the 0..1 input."""
    l2: float = 0.02
    """Weight of the L2 penalty on pixel values: keeps pixels the filter ignores black, as in MNIST."""
    blur_every: int = 8
    """Blur the image every this many steps (0: never); suppresses pixel noise, as in deep dream."""
    blur_sigma: float = 0.6
    """Standard deviation of the Gaussian blur, in pixels."""
    init_scale: float = 0.05
    """The start image: uniform noise in [0, init_scale]."""
    seed: int = 0
    """Seeds the start noise."""

    def __post_init__(self) -> None:
        if self.objective not in ("mean", "centre"):
            raise ValueError(f"objective must be 'mean' or 'centre', got {self.objective!r}")
        if self.steps < 1 or self.lr <= 0 or self.l2 < 0 or self.blur_every < 0 or self.blur_sigma <= 0:
            raise ValueError("steps >= 1, lr > 0, l2 >= 0, blur_every >= 0 and blur_sigma > 0 are required")
        if not 0 <= self.init_scale <= 1:
            raise ValueError(f"init_scale must be in [0, 1], got {self.init_scale}")

    def to_dict(self) -> dict:
        return asdict(self)


def _gaussian_kernel(sigma: float, channels: int) -> torch.Tensor:
    """A 5×5 Gaussian, one copy per channel: weight [channels, 1, 5, 5] for a grouped conv."""
    x = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = torch.outer(k, k)
    return (k / k.sum()).expand(channels, 1, 5, 5).contiguous()


def dream(model: TargetCNN, cfg: DreamConfig = DreamConfig()) -> np.ndarray:
    """Activation maximisation ("deep dream", §3.1) for each conv1 filter → float32 [8, 28, 28] in [0, 1].

    Image k starts as faint noise and follows the gradient of filter k's response: as in
    Mordvintsev et al.'s DeepDream, the squared activation, averaged over the map ("mean") or
    taken at the centre pixel ("centre"). Squaring rewards a few strong responses over many weak
    ones, so the noise grows into the filter's pattern instead of a uniform grey; softplus, a
    smooth ReLU, keeps a gradient where the filter starts below zero. We ascend the log of the
    response, so every filter moves at the same relative pace whatever its scale, with an L2
    penalty, a blur every few steps and pixels clamped to [0, 1]. The eight images are one
    grouped convolution (image k sees only filter k); the model is neither changed nor given
    gradients.
    """
    conv = model.conv1[0]
    weight = conv.weight.detach()
    bias = conv.bias.detach() if conv.bias is not None else None
    n = weight.shape[0]
    gen = torch.Generator().manual_seed(cfg.seed)
    x = (torch.rand(1, n, 28, 28, generator=gen) * cfg.init_scale).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=cfg.lr)
    blur = _gaussian_kernel(cfg.blur_sigma, n)
    with single_thread(), torch.enable_grad():
        for step in range(cfg.steps):
            z = F.conv2d(x, weight, bias, stride=conv.stride, padding=conv.padding, groups=n)[0]  # [8, 28, 28]
            act = F.softplus(z) ** 2
            response = act[:, 14, 14] if cfg.objective == "centre" else act.mean(dim=(1, 2))
            loss = -torch.log(response.clamp_min(1e-12)).sum() + cfg.l2 * x.pow(2).mean(dim=(2, 3)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                if cfg.blur_every and (step + 1) % cfg.blur_every == 0:
                    x.copy_(F.conv2d(x, blur, padding=2, groups=n))
                x.clamp_(0.0, 1.0)
    return x.detach()[0].numpy().astype(np.float32)


class FilterActivation(nn.Module):
    """The target's conv1 block reduced to one scalar per batch item: filter k at pooled (row, col).

    Captum attributes a forward function's per-example scalar output; this module is that
    function. It holds a reference to the target's conv1 block, so no copy and no hooks.
    """

    def __init__(self, model: TargetCNN, filter: int, row: int, col: int) -> None:
        super().__init__()
        if not 0 <= filter < N_FILTERS:
            raise ValueError(f"filter must be 0..{N_FILTERS - 1}, got {filter}")
        if not (0 <= row < SIDE and 0 <= col < SIDE):
            raise ValueError(f"position must be in 0..{SIDE - 1}, got (row={row}, col={col})")
        self.conv1 = model.conv1
        self.filter, self.row, self.col = filter, row, col

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[batch, 1, 28, 28] → [batch]."""
        return self.conv1(x)[:, self.filter, self.row, self.col]


def _integrated_gradients(fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    # Baseline: a black image, MNIST's background; attributions then sum to a(x) - a(black).
    return IntegratedGradients(fn).attribute(x, baselines=torch.zeros_like(x), n_steps=64)


def _saliency(fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from captum.attr import Saliency

    return Saliency(fn).attribute(x, abs=True)


def _input_x_gradient(fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from captum.attr import InputXGradient

    return InputXGradient(fn).attribute(x)


ATTRIBUTION_METHODS: dict[str, tuple[str, Callable[[nn.Module, torch.Tensor], torch.Tensor]]] = {
    "integrated_gradients": ("Integrated gradients (signed; baseline: black image)", _integrated_gradients),
    "saliency": ("Saliency (|gradient|)", _saliency),
    "input_x_gradient": ("Input × gradient (signed)", _input_x_gradient),
}
"""Registered attribution methods: name → (label for the UI, function)."""


def attribute(
    model: TargetCNN, image: np.ndarray, filter: int, row: int, col: int, method: str = "integrated_gradients"
) -> np.ndarray:
    """Attribution of filter ``filter``'s conv1 activation at pooled (row, col) to the pixels of
    ``image`` (uint8 [28, 28]) → float32 [28, 28].

    Only pixels in the receptive field of the chosen cell (the 9×9 window around the pooled 2×2
    block) can be non-zero. The model is left as it was: eval mode, no hooks, no parameter grads.
    """
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"unknown attribution method {method!r}; registered: {', '.join(ATTRIBUTION_METHODS)}")
    fn = FilterActivation(model, filter, row, col)
    was_training = model.training
    model.eval()
    grads_before = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():  # gradients w.r.t. the input only
            p.requires_grad_(False)
        x = to_input(np.asarray(image)).requires_grad_(True)
        with single_thread(), torch.enable_grad():
            attr = ATTRIBUTION_METHODS[method][1](fn, x)
    finally:
        for p, flag in zip(model.parameters(), grads_before, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
    return attr.detach()[0, 0].numpy().astype(np.float32)


def receptive_field(row: int, col: int, kernel: int = 9) -> tuple[slice, slice]:
    """Input rows and columns that can reach pooled cell (row, col): the 2×2 pool block widened by kernel//2."""
    half = kernel // 2
    rows = slice(max(2 * row - half, 0), min(2 * row + 1 + half, 27) + 1)
    cols = slice(max(2 * col - half, 0), min(2 * col + 1 + half, 27) + 1)
    return rows, cols
