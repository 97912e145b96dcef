"""Filters: what §3.1 looked at to find the concepts of conv1 — weights, deep dream, attribution."""

import numpy as np
import streamlit as st

from interp.language import SYNTH_SHAPES
from interp.target.activations import image_activations
from interp.target.filters import ATTRIBUTION_METHODS, attribute, filter_weights, receptive_field
from interp.target.profiles import UNTUNED
from pages import common
from pages.figures import upscale
from pages.figures_filters import activation_picker, attribution_overlay, image_grid, profile_figure, weight_grid

ROW, COL, PICK = "filters_row", "filters_col", "filters_pick"


def on_pick() -> None:
    """A click on the activation map selects that cell (it runs before the number inputs exist)."""
    points = st.session_state[PICK].selection.points
    if points:
        st.session_state[ROW] = int(round(points[0]["y"]))
        st.session_state[COL] = int(round(points[0]["x"]))


st.title("Filters")
st.caption("§3.1: the authors found the concepts stored in conv1 — vertical, horizontal and diagonal strokes, "
           "edges — by looking at the filters' weights, at images optimised to excite each filter "
           "(deep dream) and at what a filter responds to in real images. The same three views, for the "
           "shipped target CNN.")

model = common.target_model()

st.subheader("Weights")
c_w, c_wt = st.columns([4, 1])
with c_wt:
    shared = st.toggle("Shared colour scale", value=True, key="filters_shared",
                       help="On: one scale for all filters, so their strengths compare.")
    st.caption("Each filter is a 9×9 kernel on the input image: red weights add the pixel's brightness "
               "to the response, blue ones subtract it. A stroke excites a filter whose red band it covers.")
with c_w:
    st.plotly_chart(weight_grid(filter_weights(model), shared_scale=shared), key="filters_weights")

st.subheader("Activation maximisation (deep dream)")
c_d, c_dt = st.columns([4, 1])
with c_dt:
    objective = st.radio("Maximise", ["mean", "centre"], key="filters_objective",
                         format_func={"mean": "response over the map", "centre": "response at the centre"}.get,
                         help="Over the map: the filter's favourite texture. At the centre: what one "
                              "receptive field (9×9 pixels) wants to see.")
    st.caption("A faint-noise image per filter, pushed by gradient ascent to excite that filter (squared "
               "response, L2 penalty, blur, pixels kept in [0, 1]); seeded, so it is the same on every run.")
with c_d:
    st.plotly_chart(image_grid(common.dream_images(objective), [f"filter {f}" for f in range(8)]),
                    key="filters_dreams")

st.subheader("What each filter responds to")
st.caption("Measured, not read off the pictures above: each filter's response (its strongest cell above its level "
           "on a black image) to 50 generated images per shape type holding exactly one shape, to a thin line "
           "through the centre at 12 angles, and the 1,000 first MNIST test digits' strongest windows. "
           "Open a line for the numbers behind it.")
for p in common.filter_profiles():
    with st.expander(p.sentence):
        c_num, c_top = st.columns([3, 2])
        with c_num:
            st.plotly_chart(profile_figure(p.shape_responses, list(SYNTH_SHAPES), p.angles, p.tuning,
                                           p.preferred_angle if p.selectivity >= UNTUNED else None, p.filter),
                            key=f"filters_profile_{p.filter}")
            ratio = "∞" if p.ratio == float("inf") else f"{p.ratio:.2f}×"
            st.caption(f"Best shape / mean of the others: {ratio}. Orientation: {p.preferred_angle:.0f}°, "
                       f"selectivity {p.selectivity:.2f} (1 − circular variance: 0 none, 1 one angle only).")
        with c_top:
            st.image([upscale(q.pixels, 60) for q in p.patches],
                     caption=[f"#{q.index}: {q.value:.2f}" for q in p.patches])
            st.caption(f"The {len(p.patches)} MNIST test digits that excite filter {p.filter} most: the 10×10 "
                       "input window of its strongest cell (test index: activation).")

st.subheader("Attribution on the current image")
st.caption("Which input pixels make one filter fire at one position of its 14×14 map (Captum). Choose the "
           "position with the inputs or click a cell of the activation map.")
image, label = common.current_image()
acts = image_activations(model, image)
c1, c2, c3, c4 = st.columns([1, 1, 1, 2])
f = c1.selectbox("Filter", list(range(8)), key="filters_filter", format_func=lambda i: f"filter {i}")
if ROW not in st.session_state:  # start at the filter's strongest cell
    st.session_state[ROW], st.session_state[COL] = map(int, np.unravel_index(acts[f].argmax(), acts[f].shape))
r = c2.number_input("Row", 0, 13, step=1, key=ROW)
c = c3.number_input("Column", 0, 13, step=1, key=COL)
method = c4.radio("Method", list(ATTRIBUTION_METHODS), key="filters_method", horizontal=True,
                  format_func=lambda m: ATTRIBUTION_METHODS[m][0].split(" (")[0],
                  help="; ".join(label for label, _ in ATTRIBUTION_METHODS.values()))

attribution = attribute(model, image, f, r, c, method)
signed = method != "saliency"
a_img, a_map, a_attr = st.columns(3)
with a_img:
    st.image(upscale(image, 252), caption=label)
with a_map:
    st.plotly_chart(activation_picker(acts[f], f, r, c), key=PICK, on_select=on_pick, selection_mode="points")
with a_attr:
    st.plotly_chart(attribution_overlay(image, attribution, receptive_field(r, c), signed=signed,
                                        title=ATTRIBUTION_METHODS[method][0].split(" (")[0]),
                    key="filters_attribution")

m1, m2, m3 = st.columns(3)
m1.metric(f"filter {f} at (row {r}, column {c})", f"{acts[f, r, c]:.3f}")
m2.metric("sum of attributions", f"{attribution.sum():.3f}",
          help="For integrated gradients this is a(image) − a(black image) (completeness), up to a small error.")
top_r, top_c = map(int, np.unravel_index(np.abs(attribution).argmax(), attribution.shape))
m3.metric("strongest pixel", f"row {top_r}, column {top_c}")
if acts[f, r, c] <= 0:
    st.info("This cell is 0 after the ReLU (the filter does not fire here), so its gradient is 0: pick a brighter cell.")
st.caption(f"{ATTRIBUTION_METHODS[method][0]}. Red pixels raise the activation, blue ones lower it; "
           "the dotted box is the receptive field of the chosen cell.")
