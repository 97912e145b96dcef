"""Shapes: synthetic images of the shape set S (§3.1), their ground truth in L, activations and encoding."""

import streamlit as st

from interp.data.shapes import generate_shapes, render_counts
from interp.encoding.encoders import list_encoders
from interp.language import SYNTH_SHAPES, format_description
from interp.pipeline import analyze_image
from pages.common import IMAGE_LABEL_KEY, active_threshold_set, set_current_image, target_model
from pages.figures import activation_grid, letter_grid, level_legend, upscale

MODES = ("Random, as in the dataset", "Choose the counts")
GALLERY = 12

st.title("Shapes")
st.caption("Synthetic 28×28 images of the shape set S with their ground-truth description in the language L: "
           "the images the interpreter is trained on (§3.1). Each holds 1–4 shapes, each type 0–4 times.")


def next_seed() -> None:
    st.session_state.shapes_seed = st.session_state.get("shapes_seed", 0) + 1


image = description = None
c_mode, c_seed, c_next, c_enc = st.columns([1.6, 1, 0.6, 1], vertical_alignment="bottom")
mode = c_mode.segmented_control("Generate", MODES, default=MODES[0], required=True, key="shapes_mode")
seed = c_seed.number_input("Seed", 0, 2**31 - 1, 0, key="shapes_seed")
c_next.button("Next seed", on_click=next_seed, key="shapes_next")
encoder = c_enc.selectbox("Encoder for the text", list_encoders(), key="shapes_encoder")
if mode == MODES[0]:
    types = st.pills("Shape types to draw from", SYNTH_SHAPES, selection_mode="multi",
                     default=list(SYNTH_SHAPES), key="shapes_types")
    if not types:
        st.warning("Pick at least one shape type.")
    else:
        batch = generate_shapes(1, int(seed), types=types)
        image, description = batch.images[0], batch.descriptions[0]
else:
    cols = st.columns(len(SYNTH_SHAPES))
    counts = {name: col.number_input(name, 0, 4, int(name in ("vertical", "ellipse")), key=f"n_{name}")
              for col, name in zip(cols, SYNTH_SHAPES, strict=True)}
    st.caption("At most 4 of one type; more than 4 shapes in all rarely fit in 28×28.")
    try:
        image = render_counts(counts, int(seed))
        description = format_description({n: int(c) for n, c in counts.items()})
    except ValueError as exc:
        st.error(f"{exc}. Try fewer shapes or another seed.")

right = st.container()
with right:
    if image is not None:
        result = analyze_image(target_model(), image, active_threshold_set(), encoder)
        c1, c2 = st.columns([1, 3], gap="medium")
        c1.image(upscale(image), caption=f"seed {seed}")
        c2.markdown("**Ground truth**")
        c2.markdown(f"> {description}")
        c2.caption(f"Target CNN (an MNIST classifier) would call it a {result.prediction} "
                   f"({result.probabilities[result.prediction]:.0%}).")
        c2.button("Use as current image", type="primary", key="shapes_use", on_click=set_current_image,
                  args=(image, f"shapes seed {seed}: {description}"))
        if st.session_state.get(IMAGE_LABEL_KEY) == f"shapes seed {seed}: {description}":
            c2.page_link("pages/activations.py", label="Current image: see activations", icon="🔥")

if image is not None:
    maps, grids, raw = st.tabs(["conv1 activations", "Encoding: letter grids", "Encoding: raw text"])
    with maps:
        st.plotly_chart(activation_grid(result.activations, result.bins, shared_scale=True, height=480),
                        key="shapes_maps")
    with grids:
        st.markdown(level_legend(), unsafe_allow_html=True)
        st.plotly_chart(letter_grid(result.bins, result.activations, height=560), key="shapes_letters")
    with raw:
        st.caption(f"{encoder} encoder, {result.n_chars:,} characters.")
        st.code(result.encoding, language=None, wrap_lines=True)

st.subheader("Gallery")
g1, _ = st.columns([1, 3])
gallery_seed = g1.number_input("Gallery seed", 0, 2**31 - 1, 1, key="gallery_seed",
                               help=f"{GALLERY} samples drawn like the dataset (all shape types).")
batch = generate_shapes(GALLERY, int(gallery_seed))
for start in range(0, GALLERY, 6):  # one st.columns row per gallery row keeps reading order
    for col, img, text in zip(st.columns(6), batch.images[start:start + 6], batch.descriptions[start:start + 6],
                              strict=True):
        col.image(upscale(img, 140), caption=text.removeprefix("Image with "))
