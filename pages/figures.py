"""Plotly figure builders shared by the pages (drawing only: arrays in, figures out)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.encoding.encoders import LETTERS

LEVEL_NAMES = ("zero", "low", "medium", "high", "very high")
LEVEL_COLORS = ("#eceff4", "#fde9a9", "#fdae61", "#e8553e", "#9e0d29")
"""Cell colour for bins z, l, m, h, v: grey for "no signal", then a warm ramp."""
ACTIVATION_SCALE = [[k / 9, c] for k, c in enumerate(
    ["#000000", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06", "#f7d13d", "#fcffa4"])]
"""Inferno: black for 0 like the input images, bright for strong responses. Its first colour is written
#000000, not plotly's #000004: Streamlit's frontend swaps #000001..#0000xx for its theme colours."""


def upscale(image: np.ndarray, size: int = 196) -> np.ndarray:
    """uint8 [28, 28] → [size, size] with square pixels (browsers would blur a small image)."""
    image = np.asarray(image)
    k = max(1, size // image.shape[0])
    return np.kron(image, np.ones((k, k), dtype=image.dtype))


def probability_bar(probabilities: np.ndarray, height: int = 230) -> go.Figure:
    """The target's class probabilities [10] as bars, the predicted digit highlighted."""
    p = np.asarray(probabilities, dtype=float)
    top = int(p.argmax())
    colors = ["#e8553e" if d == top else "#9aa5b8" for d in range(len(p))]
    fig = go.Figure(go.Bar(
        x=[str(d) for d in range(len(p))], y=p, marker_color=colors,
        text=[f"{v:.0%}" if v >= 0.01 else "" for v in p], textposition="outside", cliponaxis=False,
        hovertemplate="digit %{x}: %{y:.2%}<extra></extra>",
    ))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=24, b=10), showlegend=False,
                      yaxis=dict(range=[0, 1.12], tickformat=".0%", title=None, dtick=0.5),
                      xaxis=dict(title=None, type="category"), bargap=0.25)
    return fig


def filter_grid(titles: list[str], height: int) -> go.Figure:
    """An empty grid of 4 columns, one cell per title (2×4 for conv1's 8 filters, 4×4 for conv2's 16):
    square cells, row 0 at the top as in the image, no ticks."""
    rows = -(-len(titles) // 4)
    fig = make_subplots(rows=rows, cols=4, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=0.14 / rows)
    fig.update_layout(height=height, margin=dict(l=4, r=4, t=28, b=4), plot_bgcolor="white")
    for i in range(len(titles)):
        row, col = divmod(i, 4)
        axis = "" if i == 0 else str(i + 1)
        # Square cells, row 0 at the top, as in the image.
        fig.update_yaxes(scaleanchor=f"x{axis}", autorange="reversed", showticklabels=False, ticks="", showgrid=False,
                         zeroline=False, row=row + 1, col=col + 1)
        fig.update_xaxes(showticklabels=False, ticks="", showgrid=False, zeroline=False, constrain="domain",
                         row=row + 1, col=col + 1)
    fig.update_annotations(font_size=13)
    return fig


def activation_grid(activations: np.ndarray, bins: np.ndarray, shared_scale: bool = False,
                    height: int = 560) -> go.Figure:
    """Maps float [C, S, S] as a grid of heatmaps, 4 a row (conv1's [8, 14, 14]: 2×4; conv2's [16, 7, 7]:
    4×4, ``height`` per two rows); hover: filter, row, column, value, bin.

    ``shared_scale``: one colour scale (0 .. the largest activation) for all filters, so their
    strengths compare; otherwise each map runs from 0 to its own maximum.
    """
    acts = np.asarray(activations, dtype=float)
    letters = np.array(list(LETTERS))[np.asarray(bins)]
    top = max(float(acts.max()), 1e-6)
    n = len(acts)
    fig = filter_grid([f"filter {f}  (max {acts[f].max():.2f})" for f in range(n)], _grid_height(height, n))
    for f in range(n):
        row, col = divmod(f, 4)
        fig.add_trace(go.Heatmap(
            z=acts[f], customdata=letters[f], zmin=0, zmax=top if shared_scale else max(float(acts[f].max()), 1e-6),
            colorscale=ACTIVATION_SCALE, showscale=shared_scale and f == 0,
            colorbar=dict(title="a", thickness=12, len=0.9) if shared_scale else None,
            hovertemplate=f"filter {f}<br>row %{{y}}, column %{{x}}<br>value %{{z:.3f}}<br>bin %{{customdata}}"
                          "<extra></extra>",
            name=f"filter {f}",
        ), row=row + 1, col=col + 1)
    return fig


def _level_colorscale() -> list[list]:
    """A stepped colour scale for integer bins 0..4 on zmin=-0.5, zmax=4.5."""
    scale = []
    for k, color in enumerate(LEVEL_COLORS):
        scale += [[k / 5, color], [(k + 1) / 5, color]]
    return scale


def letter_grid(bins: np.ndarray, activations: np.ndarray | None = None, height: int = 600) -> go.Figure:
    """The encoding as one letter grid (z/l/m/h/v) per filter, each cell coloured by its bin: eight 14×14
    grids for conv1, sixteen 7×7 for conv2 (``height`` per two rows of four)."""
    b = np.asarray(bins)
    letters = np.array(list(LETTERS))[b]
    acts = np.zeros(b.shape) if activations is None else np.asarray(activations, dtype=float)
    n = len(b)
    fig = filter_grid([f"f{f}" for f in range(n)], _grid_height(height, n))
    for f in range(n):
        row, col = divmod(f, 4)
        fig.add_trace(go.Heatmap(
            z=b[f], text=letters[f], customdata=acts[f], texttemplate="%{text}", textfont=dict(size=10),
            zmin=-0.5, zmax=4.5, colorscale=_level_colorscale(), showscale=False, xgap=1, ygap=1,
            hovertemplate=f"filter {f}<br>row %{{y}}, column %{{x}}<br>bin %{{text}}<br>value %{{customdata:.3f}}"
                          "<extra></extra>",
            name=f"f{f}",
        ), row=row + 1, col=col + 1)
    return fig


def _grid_height(height: int, n: int) -> int:
    """``height`` is for conv1's two rows of four maps; more maps get taller in proportion."""
    return height * max(1, -(-n // 4)) // 2


def level_legend() -> str:
    """Markdown: the five level letters with their colours."""
    chips = [f"<span style='background:{c};padding:1px 7px;border-radius:3px;border:1px solid #ccc;"
             f"font-family:monospace'>{letter}</span> {name}"
             for letter, name, c in zip(LETTERS, LEVEL_NAMES, LEVEL_COLORS, strict=True)]
    return " &nbsp; ".join(chips)


def loss_curve(metrics: list[dict], height: int = 320, log_y: bool = False) -> go.Figure:
    """Training and validation loss against the optimiser step, from a run's metrics.jsonl rows."""
    fig = go.Figure()
    for key, name, mode in (("loss", "train", "lines"), ("eval_loss", "validation", "lines+markers")):
        rows = [m for m in metrics if m.get(key) is not None]
        if rows:
            fig.add_trace(go.Scatter(x=[m["step"] for m in rows], y=[m[key] for m in rows], name=name, mode=mode))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="step", yaxis_title="loss",
                      yaxis_type="log" if log_y else "linear", legend=dict(orientation="h", y=1.12))
    return fig
