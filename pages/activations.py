"""Activations: the target's prediction, a layer's maps (conv1 by default) and their encoding c(a) for the current image."""

import streamlit as st

from interp.encoding.encoders import get_encoder, list_encoders
from interp.pipeline import analyze_image, count_tokens, to_npy_bytes
from interp.target.layers import DEFAULT_LAYER, get_layer, list_layers
from pages.common import active_threshold_set, current_image, target_model, tokenizer
from pages.figures import activation_grid, letter_grid, level_legend, probability_bar, upscale

st.title("Activations")
st.caption("What a convolutional layer of the target CNN computes for the current image (conv1, the paper's "
           "layer: 8 filters, 14×14 after ReLU and 2×2 max-pool; conv2: 16 filters, 7×7) and the text c(a) an "
           "interpreter reads (§3.2). The interpreters read conv1.")

image, label = current_image()

c_img, c_pred, c_ctl = st.columns([1, 2, 1.3], gap="large")
with c_ctl:
    layer = get_layer(st.segmented_control(
        "Layer", list_layers(), default=DEFAULT_LAYER, key="act_layer", required=True,
        format_func=lambda n: f"{n} · {get_layer(n).channels}×{get_layer(n).side}×{get_layer(n).side}",
        help="Which block's maps to show and encode (after ReLU and 2×2 max-pool). conv2 is binned with its own "
             "threshold set (the Binning page, layer conv2)."))
    thresholds = active_threshold_set(layer.name)
    encoder = st.selectbox("Encoder", list_encoders(), key="act_encoder",
                           help="How the binned maps are written as text; `paper` is §3.2 as published.")
    st.caption(get_encoder(encoder).description)
    shared = st.toggle("Shared colour scale", key="act_shared",
                       help="On: one scale, so filters compare. Off: each map from 0 to its own maximum.")
    st.caption(f"Threshold set: **{thresholds.name}** (change it on the Binning page)")

result = analyze_image(target_model(), image, thresholds, encoder, layer.name)
with c_img:
    st.image(upscale(image, 168), caption=label)
    st.page_link("pages/input.py", label="Change image", icon="✏️")
with c_pred:
    st.markdown(f"#### Target prediction: **{result.prediction}** · {result.probabilities[result.prediction]:.1%}")
    st.plotly_chart(probability_bar(result.probabilities, height=200), key="act_probs")

st.subheader(f"{layer.name} activation maps")
st.plotly_chart(activation_grid(result.activations, result.bins, shared_scale=shared), key="act_maps")

st.subheader("Encoding c(a)")
tok = tokenizer()
n_tokens = count_tokens(result.encoding, tok)
m1, m2, m3 = st.columns(3)
m1.metric("Characters", f"{result.n_chars:,}")
m2.metric("SmolLM2 tokens", "tokenizer not fetched" if n_tokens is None else f"{n_tokens:,}",
          help="Tokens of the SmolLM2-135M tokenizer (`python -m interp models fetch` to get it).")
m3.metric("Encoder", encoder)

grids, raw = st.tabs(["Letter grids", "Raw text"])
with grids:
    st.markdown(level_legend(), unsafe_allow_html=True)
    st.plotly_chart(letter_grid(result.bins, result.activations), key="act_letters")
with raw:
    st.caption("The exact string, with the `f` delimiter before each filter; the copy button is at its top right.")
    st.code(result.encoding, language=None, wrap_lines=True)

d1, d2, _ = st.columns([1, 1, 2])
d1.download_button("Download encoding (.txt)", result.encoding, file_name=f"encoding-{encoder}.txt",
                   mime="text/plain", key="dl_encoding")
d2.download_button("Download activations (.npy)", to_npy_bytes(result.activations),
                   file_name="activations.npy" if layer.name == DEFAULT_LAYER else f"activations-{layer.name}.npy",
                   mime="application/octet-stream", key="dl_acts",
                   help=f"float32 {list(layer.shape)}: {layer.name} after ReLU and max-pool.")
