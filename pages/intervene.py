"""Intervene: switch filters of the interpreter's layer off, scale or clamp them, and see what the CNN and the
interpreter then say."""

from datetime import datetime

import plotly.express as px
import streamlit as st

from interp.catalog import effect_maps
from interp.encoding.encoders import LETTERS
from interp.evaluation.effects import EffectConfig, EffectMap, run_effects
from interp.interventions import MAX_SCALE, Intervention, intervene_image
from interp.jobs import control as jobs
from interp.jobs.spec import EffectsJobConfig, EvaluateJobConfig, JobSpec
from interp.pipeline import thresholds_for
from interp.target.layers import get_layer
from pages.common import (
    active_jobs,
    active_threshold_set,
    current_image,
    interpreter,
    interpreter_choices,
    job_progress,
    paths,
    store,
    target_model,
)
from pages.figures import activation_grid, upscale

OPS = {"none": "as it is", "ablate": "ablate (0)", "scale": "scale ×", "clamp": "clamp to bin"}
INLINE_MAX = 100
"""Effect maps up to this many images run in the page; larger ones as a job (or `intervene effects`)."""


def effects_progress() -> None:
    """Running effect-map jobs as progress bars; the page reloads when one it started ends."""
    ended = job_progress("effects", "iv_fx_jobs")
    for v in ended:
        if v.status == "succeeded":
            st.session_state["iv_fx_pick"] = v.spec.name
        else:  # a job that died says so after the reload
            st.session_state["iv_fx_failed"] = f"Effect map `{v.spec.name}` {v.status}: {v.message or 'no message'}"
    if ended:
        st.rerun(scope="app")


st.title("Intervene")
st.caption("The causal test: change what one filter of the interpreter's layer (conv1, or conv2 for a conv2 "
           "interpreter) passes on — switch it off, scale it, or clamp it to a bin where it fires — and see what the "
           "target CNN predicts and what the interpreter reads then. The change acts on the activations through a "
           "scoped hook, never on the saved weights.")

image, label = current_image()
choices = [c for c in interpreter_choices() if c.available]
if not choices:
    st.error("No interpreter can be loaded. Run `python -m interp models fetch smollm2-135m`, then reload.")
    st.stop()
c_img, c_pick = st.columns([1, 3], gap="large")
with c_img:
    st.image(upscale(image, 140), caption=label)
    st.page_link("pages/input.py", label="Change image", icon="✏️")
with c_pick:
    pick = st.selectbox("Interpreter", range(len(choices)), format_func=lambda i: choices[i].label,
                        key="iv_interpreter")
    choice = choices[pick]
    layer = get_layer(choice.layer)
    thresholds = thresholds_for(choice.thresholds, lambda: active_threshold_set(layer.name), layer)
    st.caption(f"Interventions on **{layer.name}** {list(layer.shape)}, the interpreter's layer. Bins with threshold "
               f"set **{thresholds.name}** (the interpreter's own, else the active {layer.name} set).")

st.subheader("Interventions")
interventions = []
cols = [col for _ in range(0, layer.channels, 8) for col in st.columns(8)]  # rows of 8: conv2's 16 fit
for f, col in enumerate(cols):
    op = col.selectbox(f"filter {f}", list(OPS), format_func=OPS.get, key=f"iv_op_{layer.name}_{f}")
    if op == "ablate":
        interventions.append(Intervention(f, "ablate"))
    elif op == "scale":
        interventions.append(Intervention(f, "scale", col.slider("×", 0.0, MAX_SCALE, 0.5, 0.1,
                                                                 key=f"iv_scale_{layer.name}_{f}")))
    elif op == "clamp":
        interventions.append(Intervention(f, "clamp", col.selectbox("bin", list(LETTERS[1:]), index=2,
                                                                  key=f"iv_clamp_{layer.name}_{f}")))

if not interventions:
    st.info("Choose an intervention for at least one filter above (e.g. ablate filter 3).")
else:
    try:
        model = interpreter(choice.spec)
    except Exception as exc:  # not fetched, broken adapter: say so, keep the page
        st.error(f"Could not load {choice.label}: {exc}")
        st.stop()
    with st.spinner("Describing the image before and after…"):
        cache = st.session_state.setdefault("iv_read", {}).setdefault(choice.spec, {})  # encoding → description
        if len(cache) > 500:
            cache.clear()
        r = intervene_image(target_model(), image, interventions, thresholds, choice.encoder, model.describe, cache)
    st.caption(" · ".join(iv.label for iv in interventions)
               + f" — {r.changed_cells} of {layer.channels * layer.cells:,} cells change bin.")
    before, after = st.columns(2, gap="large")
    for col, title, a, text in ((before, "Before", r.before, r.description_before),
                                (after, "After", r.after, r.description_after)):
        with col:
            st.markdown(f"#### {title}: digit **{a.prediction}** · {a.probabilities[a.prediction]:.1%}")
            st.markdown(f"**Interpreter:** {text or '*(empty)*'}")
    if r.changed:
        st.warning("Changed shape counts: " + ", ".join(f"**{s}** {b} → {a}" for s, (b, a) in r.changed.items()))
    else:
        st.success("The interpreter reads the same shapes after the intervention.")
    shared = st.toggle("Shared colour scale", value=True, key="iv_shared")
    m1, m2 = st.columns(2)
    m1.plotly_chart(activation_grid(r.before.activations, r.before.bins, shared_scale=shared, height=380),
                    key="iv_maps_before")
    m2.plotly_chart(activation_grid(r.after.activations, r.after.bins, shared_scale=shared, height=380),
                    key="iv_maps_after")
    with st.expander("Encodings c(a), before and after"):
        st.code(r.before.encoding, language=None, wrap_lines=True)
        st.code(r.after.encoding, language=None, wrap_lines=True)

# --- the effect map ---------------------------------------------------------------------------------------
st.subheader("Effect map: which filter carries which shape")
st.caption(f"Over held-out synthetic images (D_syn_eval), each {layer.name} filter ablated alone: the share of the "
           "shapes the interpreter (and, beside it, the activation probe of its layer) read before that are gone "
           "after, and the target's "
           f"digit accuracy on MNIST test images. Up to {INLINE_MAX} images in the page, more as a job (the "
           "Fine-tuning jobs page lists it); from a shell: `python -m interp intervene effects --name NAME --n 200`.")
if failed := st.session_state.pop("iv_fx_failed", None):
    st.error(failed)
with st.form("iv_effects"):
    a, b, c = st.columns([1, 1, 2])
    n = a.number_input("Images", 4, 5000, 50, key="iv_fx_n")
    n_mnist = b.number_input("MNIST digits", 0, 1500, 500, key="iv_fx_mnist")
    go = c.form_submit_button("Compute the effect map", type="primary")
if go and n > INLINE_MAX:
    try:
        name = f"effects-{datetime.now():%m%d-%H%M%S}"
        spec = JobSpec(kind="effects", name=name, effects=EffectsJobConfig(
            run=EvaluateJobConfig.run_ref(choice.kind, choice.spec), n=int(n), n_mnist=int(n_mnist)))
        st.session_state.setdefault("iv_fx_jobs", set()).add(jobs.submit(spec, paths(), store()))
        st.success(f"Queued `{name}`: it appears below when it ends.")
    except ValueError as exc:
        st.error(f"Not queued: {exc}")
elif go:
    bar = st.progress(0.0, text="Reading the original images…")
    name = f"effects-{datetime.now():%m%d-%H%M%S}"
    try:
        _, fx = run_effects(interpreter(choice.spec), paths(), EffectConfig(n=int(n), n_mnist=int(n_mnist)), name,
                            progress=lambda d, t: bar.progress(d / t, text=f"{d - 1} of {t - 1} filters ablated"))
        st.session_state["iv_fx_pick"] = name
    except (ValueError, OSError) as exc:
        st.error(f"The effect map failed: {exc}")

st.fragment(effects_progress, run_every=2 if active_jobs("effects") else None)()

maps = effect_maps(paths().runs_dir)
if maps:
    names = [m.name for m in maps]
    if st.session_state.get("iv_fx_pick") not in names:
        st.session_state["iv_fx_pick"] = names[0]
    folder = maps[names.index(st.selectbox("Effect map", names, key="iv_fx_pick"))]
    try:
        fx = EffectMap.load(folder)
    except ValueError as exc:
        st.error(str(exc))
        st.stop()
    reader = st.radio("Read by", ["interpreter", "probe"], horizontal=True, key="iv_fx_reader",
                      disabled=fx.probe is None)
    table = fx.table(reader)
    fig = px.imshow(table, zmin=0, zmax=1, color_continuous_scale="Reds", text_auto=".0%", aspect="auto",
                    labels=dict(x="shape type", y="intervention", color="removed"))
    st.plotly_chart(fig, key="iv_fx_heatmap")
    st.caption(f"`{fx.interpreter}` on {fx.config.n} images, {fx.layer} filters, {fx.seconds:.0f} s. A blank cell: "
               "no such shape was read before.")
    st.markdown("\n".join(f"- {line}" for line in fx.summary()))
else:
    st.caption("No effect map yet.")
