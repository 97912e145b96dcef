"""Plotly figures of the Binning and Filters pages (drawing only: arrays in, figures out)."""

from __future__ import annotations

import numpy as np
import pandas  # noqa: F401  # import it whole before plotly peeks at sys.modules (see below)
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.encoding.encoders import LETTERS
from pages.figures import LEVEL_COLORS, filter_grid

THRESHOLD_COLORS = ("#5b6b82", "#c99a06", "#e0701f", "#b3172e")
"""Line colour of t1..t4: each a darker tone of the bin it opens (l, m, h, v)."""
SIGNED_SCALE = "RdBu_r"
"""Diverging: blue negative, white 0, red positive."""
OVERLAY_SCALE = [[0.0, "rgba(33,102,172,0.95)"], [0.5, "rgba(255,255,255,0)"], [1.0, "rgba(178,24,43,0.95)"]]
"""Diverging with a transparent middle, so the image shows through where attribution is ~0."""
_SQUARE = dict(showticklabels=False, showgrid=False, zeroline=False)
INFERNO = ["#000000", *plotly.colors.sequential.Inferno[1:]]
"""Plotly's Inferno with pure black at 0. Its own first colour, #000004, is one of the placeholder colours
Streamlit's frontend swaps for theme colours, so zero cells came out pink."""

# Why pandas above: plotly finds pandas through sys.modules without the import lock. On a cold server a
# script run that the user interrupted may still be importing pandas in another thread; plotly then saw a
# half-initialised module ("partially initialized module 'pandas' has no attribute 'Series'"). A real
# import waits for the other thread to finish.


def threshold_histogram(counts: np.ndarray, edges: np.ndarray, thresholds: tuple[float, ...], filter: int,
                        log: bool = True, height: int = 330) -> go.Figure:
    """A filter's reference histogram, bars coloured by the bin z..v their centre falls in, t1..t4 as lines."""
    counts = np.asarray(counts)
    edges = np.asarray(edges, dtype=float)
    centres = (edges[:-1] + edges[1:]) / 2
    level = np.searchsorted(np.asarray(thresholds, dtype=float), centres, side="left")  # bins: # of t < a
    share = counts / max(int(counts.sum()), 1)
    fig = go.Figure(go.Bar(
        x=centres, y=np.where(counts > 0, counts, np.nan) if log else counts, width=np.diff(edges),
        marker=dict(color=[LEVEL_COLORS[k] for k in level], line=dict(color="#8a8f98", width=0.4)),
        customdata=np.stack([edges[:-1], edges[1:], share * 100, np.array(list(LETTERS))[level]], axis=1),
        hovertemplate="a in [%{customdata[0]:.3f}, %{customdata[1]:.3f})<br>%{y:,} cells "
                      "(%{customdata[2]:.2f} %)<br>bin %{customdata[3]}<extra></extra>",
        name=f"filter {filter}",
    ))
    for k, t in enumerate(thresholds):
        fig.add_vline(x=t, line=dict(color=THRESHOLD_COLORS[k], width=2, dash="dash"),
                      annotation=dict(text=f"t{k + 1}", font=dict(color=THRESHOLD_COLORS[k], size=12)),
                      annotation_position="top")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), showlegend=False, bargap=0,
                      plot_bgcolor="white",
                      xaxis=dict(title=f"filter {filter} activation a (reference set)", gridcolor="#eee"),
                      yaxis=dict(title="cells" + (" (log)" if log else ""), type="log" if log else "linear",
                                 gridcolor="#eee"))
    return fig


def filter_letter_grid(bins: np.ndarray, activations: np.ndarray, filter: int, height: int = 330) -> go.Figure:
    """One filter's 14×14 map as its encoding letters, each cell coloured by its bin."""
    b = np.asarray(bins)
    scale = []
    for k, color in enumerate(LEVEL_COLORS):
        scale += [[k / 5, color], [(k + 1) / 5, color]]
    fig = go.Figure(go.Heatmap(
        z=b, text=np.array(list(LETTERS))[b], customdata=np.asarray(activations, dtype=float),
        texttemplate="%{text}", textfont=dict(size=12, family="monospace"), zmin=-0.5, zmax=4.5,
        colorscale=scale, showscale=False, xgap=1, ygap=1,
        hovertemplate=f"filter {filter}<br>row %{{y}}, column %{{x}}<br>bin %{{text}}"
                      "<br>value %{customdata:.3f}<extra></extra>",
    ))
    fig.update_layout(height=height, margin=dict(l=4, r=4, t=4, b=4), plot_bgcolor="white")
    fig.update_yaxes(scaleanchor="x", autorange="reversed", **_SQUARE)
    fig.update_xaxes(constrain="domain", **_SQUARE)
    return fig


def weight_grid(weights: np.ndarray, shared_scale: bool = True, height: int = 360) -> go.Figure:
    """conv1 kernels float [8, 9, 9] as 2×4 diverging heatmaps (blue < 0 < red, white at 0)."""
    w = np.asarray(weights, dtype=float)
    fig = filter_grid([f"filter {f}" for f in range(len(w))], height)
    top = float(np.abs(w).max()) or 1.0
    for f in range(len(w)):
        lim = top if shared_scale else float(np.abs(w[f]).max()) or 1.0
        row, col = divmod(f, 4)
        fig.add_trace(go.Heatmap(
            z=w[f], zmin=-lim, zmax=lim, zmid=0, colorscale=SIGNED_SCALE, showscale=shared_scale and f == 0,
            colorbar=dict(title="w", thickness=12, len=0.9),
            hovertemplate=f"filter {f}<br>row %{{y}}, column %{{x}}<br>weight %{{z:.3f}}<extra></extra>",
            name=f"filter {f}",
        ), row=row + 1, col=col + 1)
    return fig


def image_grid(images: np.ndarray, titles: list[str], height: int = 360) -> go.Figure:
    """Float images [8, 28, 28] in 0..1 as a 2×4 grid of grey-scale heatmaps (black 0, white 1)."""
    x = np.asarray(images, dtype=float)
    fig = filter_grid(titles, height)
    for f in range(len(x)):
        row, col = divmod(f, 4)
        fig.add_trace(go.Heatmap(
            z=x[f], zmin=0, zmax=1, colorscale="Greys_r", showscale=False,
            hovertemplate=f"filter {f}<br>row %{{y}}, column %{{x}}<br>pixel %{{z:.2f}}<extra></extra>",
            name=f"filter {f}",
        ), row=row + 1, col=col + 1)
    return fig


def _single(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=4, r=4, t=30, b=4), plot_bgcolor="white",
                      title=dict(text=title, font=dict(size=14), x=0.02), showlegend=False)
    fig.update_yaxes(scaleanchor="x", autorange="reversed", **_SQUARE)
    fig.update_xaxes(constrain="domain", **_SQUARE)
    return fig


def activation_picker(activation_map: np.ndarray, filter: int, row: int, col: int, height: int = 320) -> go.Figure:
    """One filter's 14×14 map; a click on a cell selects it (an invisible marker per cell catches the click)."""
    a = np.asarray(activation_map, dtype=float)
    rr, cc = np.mgrid[0 : a.shape[0], 0 : a.shape[1]]
    fig = go.Figure(go.Heatmap(z=a, zmin=0, colorscale=INFERNO, showscale=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=cc.ravel(), y=rr.ravel(), mode="markers", customdata=a.ravel(),
        marker=dict(size=16, symbol="square", color="rgba(0,0,0,0)"),
        hovertemplate="row %{y}, column %{x}<br>a = %{customdata:.3f}<br>click to attribute<extra></extra>",
        name="cells",
    ))
    fig.add_shape(type="rect", x0=col - 0.5, x1=col + 0.5, y0=row - 0.5, y1=row + 0.5,
                  line=dict(color="#35c0ff", width=3))
    return _single(fig, f"filter {filter} · click a cell", height)


def attribution_overlay(image: np.ndarray, attribution: np.ndarray, field: tuple[slice, slice] | None,
                        signed: bool = True, height: int = 320, title: str = "attribution") -> go.Figure:
    """The input image in grey with the attribution on top (transparent where ~0) and the receptive field."""
    img = np.asarray(image, dtype=float)
    attr = np.asarray(attribution, dtype=float)
    lim = float(np.abs(attr).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=img, zmin=0, zmax=255, colorscale="Greys_r", showscale=False, hoverinfo="skip"))
    fig.add_trace(go.Heatmap(
        z=attr, zmin=-lim if signed else 0, zmax=lim, colorscale=OVERLAY_SCALE if signed else
        [[0.0, "rgba(255,140,0,0)"], [1.0, "rgba(255,140,0,0.95)"]],
        colorbar=dict(thickness=10, len=0.8), customdata=img,
        hovertemplate="row %{y}, column %{x}<br>attribution %{z:.4f}<br>pixel %{customdata:.0f}<extra></extra>",
    ))
    if field is not None:
        rows, cols = field
        fig.add_shape(type="rect", x0=cols.start - 0.5, x1=cols.stop - 0.5, y0=rows.start - 0.5,
                      y1=rows.stop - 0.5, line=dict(color="#35c0ff", width=2, dash="dot"))
    return _single(fig, title, height)


ORIENTATION_TICKS = dict(tickvals=[0, 45, 90, 135, 180],
                         ticktext=["0° ─", "45° ↘", "90° │", "135° ↗", "180° ─"])
"""Angles as drawn on the image (rows point down, so 45° runs ↘ like the "diagonal" shape)."""


def profile_figure(responses: np.ndarray, shapes: list[str], angles: tuple[float, ...], tuning: np.ndarray,
                   preferred: float | None, filter: int, height: int = 260) -> go.Figure:
    """A filter's numbers: mean response per shape type [7] as bars (the best one highlighted) beside its
    orientation tuning curve [len(angles)], closed at 180° = 0°, the preferred angle dashed (None: no line)."""
    r = np.asarray(responses, dtype=float)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.12,
                        subplot_titles=["response by shape type", "response to a centred line"])
    fig.add_trace(go.Bar(
        x=shapes, y=r, marker_color=["#e8553e" if k == int(r.argmax()) else "#9aa5b8" for k in range(len(r))],
        text=[f"{v:.2f}" for v in r], textposition="outside", cliponaxis=False,
        hovertemplate=f"filter {filter}<br>%{{x}}: %{{y:.3f}}<extra></extra>",
    ), row=1, col=1)
    order = np.argsort(angles)
    x = [*np.asarray(angles, dtype=float)[order], 180.0]
    y = [*np.asarray(tuning, dtype=float)[order], float(np.asarray(tuning)[order][0])]
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", line=dict(color="#35608c"),
                             hovertemplate=f"filter {filter}<br>%{{x:.0f}}°: %{{y:.3f}}<extra></extra>"),
                  row=1, col=2)
    if preferred is not None:
        fig.add_vline(x=preferred, line=dict(color="#e8553e", width=2, dash="dash"), row=1, col=2)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), showlegend=False, plot_bgcolor="white")
    fig.update_yaxes(title="above blank", rangemode="tozero", gridcolor="#eee")
    fig.update_yaxes(range=[0, max(float(r.max()), 1e-3) * 1.2], row=1, col=1)
    fig.update_xaxes(range=[-5, 185], **ORIENTATION_TICKS, row=1, col=2)
    fig.update_annotations(font_size=13)
    return fig
