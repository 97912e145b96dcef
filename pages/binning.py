"""Binning: tune each filter's thresholds t1..t4 on the reference distribution (§3.2) and pick the active set,
for conv1 (the paper's layer, the default) or conv2."""

import pandas as pd
import streamlit as st

from interp.encoding.encoders import LETTERS, get_encoder
from interp.encoding.thresholds import ThresholdSet
from interp.encoding.tuning import changed_filters, occupancy_for, reencode, reset_filter, update_threshold
from interp.store.thresholds import to_threshold_set as to_set
from interp.target.activations import image_activations
from interp.target.layers import DEFAULT_LAYER, get_layer, list_layers
from pages import common
from pages.figures import level_legend, upscale
from pages.figures_filters import filter_letter_grid, threshold_histogram

# Session keys. Module-level strings would be drawn by Streamlit's "magic", so these are comments.
# Each layer keeps its own draft, base, active set and widgets (`key`): conv1's keys are the plain names.
LAYER = "binning_layer"  # the layer picker
DRAFT = "binning_draft"  # the ThresholdSet being edited (what the sliders show); stored only on "Save"
BASE = "binning_base"  # name of the stored set the draft started from (None: the calibrated heuristic)
FLASH = "binning_flash"  # (where, kind, message) shown once, next run: refusals and confirmations
ACTIVE = "binning_active"
FILTER = "binning_filter"


def layer_now() -> str:
    """The picked layer (callbacks run before the script, so they read it here too)."""
    return st.session_state.get(LAYER) or DEFAULT_LAYER


def key(name: str) -> str:
    """``name`` for the picked layer: conv1's is ``name`` itself, conv2's ``name_conv2``."""
    layer = layer_now()
    return name if layer == DEFAULT_LAYER else f"{name}_{layer}"


def slider_key(f: int, k: int) -> str:
    return key(f"binning_t{k + 1}_f{f}")


def set_draft(tset: ThresholdSet, base: str | None) -> None:
    st.session_state[key(DRAFT)] = tset
    st.session_state[key(BASE)] = base


def base_set() -> ThresholdSet:
    """The set the draft started from as stored, or the calibrated heuristic when it started from that."""
    name = st.session_state.get(key(BASE))
    record = common.store().get_threshold_set(name) if name else None
    return to_set(record) if record is not None else common.calibrated_thresholds(layer_now())


def flash(where: str, kind: str, message: str) -> None:
    """Say something on the next run, at ``where`` ("top", "sliders" or "save"): beside what the user touched."""
    st.session_state[FLASH] = (where, kind, message)


def show_flash(where: str) -> None:
    if st.session_state.get(FLASH, ("",))[0] == where:
        _, kind, message = st.session_state.pop(FLASH)
        (st.error if kind == "error" else st.success)(message)


# --- callbacks: they run before the script, so they may set widget values -----------------------

def on_slide(f: int) -> None:
    """Apply the four sliders of filter f, or refuse a non-monotone row and put the sliders back."""
    draft: ThresholdSet = st.session_state[key(DRAFT)]
    values = [st.session_state[slider_key(f, k)] for k in range(4)]
    try:
        st.session_state[key(DRAFT)] = update_threshold(draft, f, values)
    except ValueError as exc:
        flash("sliders", "error", f"Refused: {exc}. Thresholds must satisfy 0 ≤ t1 ≤ t2 ≤ t3 ≤ t4.")
        for k in range(4):
            st.session_state[slider_key(f, k)] = draft.thresholds[f][k]


@common.unless_store_busy("The threshold set was not switched")
def on_choose() -> None:
    name = st.session_state[key(ACTIVE)]
    record = common.store().get_threshold_set(name)
    if record is not None:
        st.session_state[common.thresholds_key(layer_now())] = name
        set_draft(to_set(record), name)


def on_reset_filter(f: int) -> None:
    st.session_state[key(DRAFT)] = reset_filter(st.session_state[key(DRAFT)],
                                                common.calibrated_thresholds(layer_now()), f)


def on_reset_all() -> None:
    cal = common.calibrated_thresholds(layer_now())
    set_draft(ThresholdSet(name=st.session_state[key(DRAFT)].name, thresholds=cal.thresholds, notes=cal.notes,
                           layer=cal.layer),
              st.session_state[key(BASE)])


@common.unless_store_busy("Your edits were not discarded")
def on_discard() -> None:
    set_draft(base_set(), st.session_state[key(BASE)])


@common.unless_store_busy("The default threshold set was not changed")
def on_make_default() -> None:
    name = st.session_state[key(BASE)]
    common.store().set_default_threshold_set(name)
    layer = layer_now()
    flash("top", "success", f"'{name}' is now the default threshold set"
                            + ("." if layer == DEFAULT_LAYER else f" for {layer}."))


@common.unless_store_busy("Your threshold set was NOT saved (your edits are kept: press Save again)")
def on_save() -> None:
    name = st.session_state.get("binning_save_name", "").strip()
    draft: ThresholdSet = st.session_state[key(DRAFT)]
    base = st.session_state[key(BASE)]
    origin = f"'{base}'" if base else "the calibrated heuristic"
    notes = f"edited on the Binning page from {origin} (filters {changed_filters_text()})"
    # A layer's first saved set becomes its default, so every page agrees on which set it uses.
    first = common.store().get_threshold_set(layer=draft.layer) is None
    try:
        record = common.store().save_threshold_set(name, draft.as_array().tolist(), notes=notes, layer=draft.layer,
                                                   make_default=first or st.session_state.get("binning_save_default",
                                                                                              False))
    except ValueError as exc:
        flash("save", "error", f"Not saved: {exc}")
        return
    st.session_state[common.thresholds_key(record.layer)] = record.name
    set_draft(to_set(record), record.name)
    flash("save", "success", f"Saved threshold set '{record.name}'; it is now the active set"
                     + (" and the default." if record.is_default else "."))


def changed_filters_text() -> str:
    base = st.session_state[key(BASE)]
    record = common.store().get_threshold_set(base) if base else None
    if base and record is None:
        return "all"
    return ", ".join(map(str, changed_filters(st.session_state[key(DRAFT)], base_set()))) or "none"


# --- page ----------------------------------------------------------------------------------------

st.title("Binning")
st.caption("§3.2 writes every activation a as one letter: z if a ≤ t1, l ≤ t2, m ≤ t3, h ≤ t4, else v. "
           "The four thresholds per filter were chosen heuristically; here you see where they fall on each "
           "filter's distribution over a reference set (1,000 generated shapes + 1,000 MNIST training digits), "
           "move them, and watch the current image's encoding change. The paper bins conv1, and the interpreters "
           "read conv1; conv2's sets serve the Activations page's conv2 view.")

layer = get_layer(st.segmented_control(
    "Layer", list_layers(), default=DEFAULT_LAYER, key=LAYER, required=True,
    format_func=lambda n: f"{n} · {get_layer(n).channels} filters, {get_layer(n).side}×{get_layer(n).side}",
    help="Each layer has its own threshold sets (one row t1..t4 per filter) and its own default."))

with common.store_guard():  # another process holding the store: a message and Retry, not a traceback
    store = common.store()
    sets = store.list_threshold_sets(layer=layer.name)
    if sets.empty and layer.name == DEFAULT_LAYER:
        st.error("No threshold set in the store: run `python -m interp setup`.")
        st.stop()
    names = sets["name"].tolist()
    default_name = next((n for n, d in zip(sets["name"], sets["is_default"], strict=True) if d), None)
    active_name = st.session_state.get(common.thresholds_key(layer.name))
    if active_name not in names:
        active_name = default_name or (names[0] if names else None)
    if st.session_state.get(key(BASE)) != active_name or key(DRAFT) not in st.session_state:
        set_draft(to_set(store.get_threshold_set(active_name)) if active_name
                  else common.calibrated_thresholds(layer.name), active_name)
    draft: ThresholdSet = st.session_state[key(DRAFT)]
    saved = base_set()

# Active set: what every other page encodes this layer with.
c_set, c_default, c_info = st.columns([2, 1, 3], vertical_alignment="bottom")
if names:
    st.session_state[key(ACTIVE)] = active_name
    c_set.selectbox("Active threshold set", names, key=key(ACTIVE), on_change=on_choose,
                    format_func=lambda n: f"{n}  (default)" if n == default_name else n,
                    help="The set every page uses to encode this layer's activations. Saved sets live in the store.")
    c_default.button("Make default", on_click=on_make_default, disabled=active_name == default_name,
                     help="The default set is the one a new session starts with.")
else:
    c_set.info(f"No {layer.name} threshold set is saved yet: the draft starts from the calibrated heuristic "
               "(every page uses it until you save one).")
edited = changed_filters(draft, saved)
c_info.caption(f"Notes: {saved.notes or '—'}")
if edited:
    c_info.warning(f"Unsaved edits to filter{'s' if len(edited) > 1 else ''} {', '.join(map(str, edited))} "
                   f"(other pages still use '{active_name or saved.name}' as saved).", icon="✏️")

show_flash("top")

reference = common.reference_activations(layer=layer.name)
histograms = common.reference_histograms(layer=layer.name)
if st.session_state.get(key(FILTER), 0) >= layer.channels:
    st.session_state[key(FILTER)] = 0
f = st.radio("Filter", list(range(layer.channels)), key=key(FILTER), horizontal=True,
             format_func=lambda i: f"filter {i}")
row = draft.thresholds[f]

c_hist, c_enc = st.columns([3, 2], gap="large")
with c_hist:
    log = st.toggle("Log scale", value=True, key="binning_log",
                    help="The spike of (near-)zero activations dwarfs the tail on a linear axis.")
    counts, edges = histograms[f]
    st.plotly_chart(threshold_histogram(counts, edges, row, f, log=log), key="binning_hist")
    # One fixed range per filter: the largest reference activation or stored t4, whichever is larger.
    top = max(float(edges[-1]), *(r[f][3] for r in sets["thresholds"]), row[3])
    step = float(f"{top / 1000:.1g}")
    cols = st.columns(4)
    for k in range(4):
        st.session_state[slider_key(f, k)] = row[k]  # the draft is the source of truth
        cols[k].slider(f"t{k + 1}", 0.0, top, step=step, key=slider_key(f, k), on_change=on_slide, args=(f,),
                       format="%.3f", help=f"Upper edge of bin {LETTERS[k]} (a ≤ t{k + 1} is at most {LETTERS[k]}).")
    show_flash("sliders")
    b1, b2, b3 = st.columns(3)
    b1.button(f"Reset filter {f} to calibrated", on_click=on_reset_filter, args=(f,),
              help="The project's heuristic (interp.encoding.thresholds.calibrate_thresholds) on the reference set.")
    b2.button("Reset all to calibrated", on_click=on_reset_all)
    b3.button("Discard edits", on_click=on_discard, disabled=not edited,
              help=f"Back to '{active_name}' as saved." if active_name else "Back to the calibrated heuristic.")

image, label = common.current_image()
acts = image_activations(common.target_model(), image, layer.name)
now, before = reencode(acts, draft), reencode(acts, saved)
with c_enc:
    c_img, c_txt = st.columns([1, 2])
    c_img.image(upscale(image, 112), caption=label)
    lengths, lengths_saved = now.lengths(), before.lengths()
    for name in ("compact", "rle"):
        diff = lengths[name] - lengths_saved[name]
        c_txt.metric(f"{name} encoding, characters", f"{lengths[name]:,}",
                     delta=f"{diff:+,} vs saved" if diff else None, delta_color="off",
                     help=f"{get_encoder(name).description}. The paper encoding is always "
                          f"{lengths['paper']:,} characters.")
    if edited:
        changed = int((now.bins != before.bins).sum())
        c_txt.caption(f"{changed} of {now.bins.size:,} cells of this image change letter against "
                      f"'{active_name or saved.name}'.")
    st.markdown(f"**Filter {f} on the current image**")
    st.markdown(level_legend(), unsafe_allow_html=True)
    st.plotly_chart(filter_letter_grid(now.bins[f], acts[f], f), key="binning_grid")
    st.code("f" + "".join(now.grid(f)), language=None, wrap_lines=True)
    st.caption(f"The paper encoding's segment for filter {f}: the delimiter f and {layer.cells} letters, row by row.")

st.subheader("Bin occupancy on the reference set")
occupancy = occupancy_for(reference, draft.as_array()) * 100
table = pd.DataFrame(occupancy, columns=list(LETTERS), index=[f"filter {i}" for i in range(layer.channels)])
st.dataframe(table.style.format("{:.1f} %").highlight_between(subset=pd.IndexSlice[f"filter {f}", :],
                                                               color="#fff3c4", left=-1, right=101),
             key="binning_occupancy")
st.caption("Share of the reference cells in each bin z, l, m, h, v per filter, with the thresholds as edited. "
           "The calibrated heuristic aims at roughly l 40 %, m 30 %, h 20 %, v 10 % of the cells above t1.")

st.subheader("Save")
with st.form("binning_save", border=False):
    c_name, c_def, c_btn = st.columns([3, 1.3, 1], vertical_alignment="bottom")
    c_name.text_input("Name", key="binning_save_name", placeholder="e.g. sharper-edges",
                      help="Saving under an existing name overwrites that set.")
    c_def.checkbox("Make it the default", key="binning_save_default")
    c_btn.form_submit_button("Save as named set", on_click=on_save, type="primary")
show_flash("save")
