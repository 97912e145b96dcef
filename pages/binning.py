"""Binning: tune each filter's thresholds t1..t4 on the reference distribution (§3.2) and pick the active set."""

import pandas as pd
import streamlit as st

from interp.encoding.encoders import LETTERS, get_encoder
from interp.encoding.thresholds import N_FILTERS, ThresholdSet
from interp.encoding.tuning import changed_filters, occupancy_for, reencode, reset_filter, update_threshold
from interp.target.activations import image_activations
from pages import common
from pages.figures import level_legend, upscale
from pages.figures_filters import filter_letter_grid, threshold_histogram

# Session keys. Module-level strings would be drawn by Streamlit's "magic", so these are comments.
DRAFT = "binning_draft"  # the ThresholdSet being edited (what the sliders show); stored only on "Save"
BASE = "binning_base"  # name of the stored set the draft started from
FLASH = "binning_flash"  # (where, kind, message) shown once, next run: refusals and confirmations
ACTIVE = "binning_active"
FILTER = "binning_filter"


def slider_key(f: int, k: int) -> str:
    return f"binning_t{k + 1}_f{f}"


def to_set(record) -> ThresholdSet:
    return ThresholdSet(name=record.name, thresholds=record.thresholds, notes=record.notes)


def set_draft(tset: ThresholdSet, base: str) -> None:
    st.session_state[DRAFT] = tset
    st.session_state[BASE] = base


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
    draft: ThresholdSet = st.session_state[DRAFT]
    values = [st.session_state[slider_key(f, k)] for k in range(4)]
    try:
        st.session_state[DRAFT] = update_threshold(draft, f, values)
    except ValueError as exc:
        flash("sliders", "error", f"Refused: {exc}. Thresholds must satisfy 0 ≤ t1 ≤ t2 ≤ t3 ≤ t4.")
        for k in range(4):
            st.session_state[slider_key(f, k)] = draft.thresholds[f][k]


@common.unless_store_busy("The threshold set was not switched")
def on_choose() -> None:
    name = st.session_state[ACTIVE]
    record = common.store().get_threshold_set(name)
    if record is not None:
        st.session_state[common.THRESHOLDS_KEY] = name
        set_draft(to_set(record), name)


def on_reset_filter(f: int) -> None:
    st.session_state[DRAFT] = reset_filter(st.session_state[DRAFT], common.calibrated_thresholds(), f)


def on_reset_all() -> None:
    cal = common.calibrated_thresholds()
    set_draft(ThresholdSet(name=st.session_state[DRAFT].name, thresholds=cal.thresholds, notes=cal.notes),
              st.session_state[BASE])


@common.unless_store_busy("Your edits were not discarded")
def on_discard() -> None:
    record = common.store().get_threshold_set(st.session_state[BASE])
    if record is not None:
        set_draft(to_set(record), record.name)


@common.unless_store_busy("The default threshold set was not changed")
def on_make_default() -> None:
    name = st.session_state[BASE]
    common.store().set_default_threshold_set(name)
    flash("top", "success", f"'{name}' is now the default threshold set.")


@common.unless_store_busy("Your threshold set was NOT saved (your edits are kept: press Save again)")
def on_save() -> None:
    name = st.session_state.get("binning_save_name", "").strip()
    draft: ThresholdSet = st.session_state[DRAFT]
    notes = f"edited on the Binning page from '{st.session_state[BASE]}' (filters {changed_filters_text()})"
    try:
        record = common.store().save_threshold_set(name, draft.as_array().tolist(), notes=notes,
                                                   make_default=st.session_state.get("binning_save_default", False))
    except ValueError as exc:
        flash("save", "error", f"Not saved: {exc}")
        return
    st.session_state[common.THRESHOLDS_KEY] = record.name
    set_draft(to_set(record), record.name)
    flash("save", "success", f"Saved threshold set '{record.name}'; it is now the active set"
                     + (" and the default." if record.is_default else "."))


def changed_filters_text() -> str:
    record = common.store().get_threshold_set(st.session_state[BASE])
    if record is None:
        return "all"
    return ", ".join(map(str, changed_filters(st.session_state[DRAFT], to_set(record)))) or "none"


# --- page ----------------------------------------------------------------------------------------

st.title("Binning")
st.caption("§3.2 writes every conv1 activation a as one letter: z if a ≤ t1, l ≤ t2, m ≤ t3, h ≤ t4, else v. "
           "The four thresholds per filter were chosen heuristically; here you see where they fall on each "
           "filter's distribution over a reference set (1,000 generated shapes + 1,000 MNIST training digits), "
           "move them, and watch the current image's encoding change.")

with common.store_guard():  # another process holding the store: a message and Retry, not a traceback
    store = common.store()
    sets = store.list_threshold_sets()
    if sets.empty:
        st.error("No threshold set in the store: run `python -m interp setup`.")
        st.stop()
    names = sets["name"].tolist()
    default_name = next((n for n, d in zip(sets["name"], sets["is_default"], strict=True) if d), names[0])
    active_name = st.session_state.get(common.THRESHOLDS_KEY)
    if active_name not in names:
        active_name = default_name
    if st.session_state.get(BASE) != active_name or DRAFT not in st.session_state:
        set_draft(to_set(store.get_threshold_set(active_name)), active_name)
    draft: ThresholdSet = st.session_state[DRAFT]
    saved = to_set(store.get_threshold_set(active_name))

# Active set: what every other page encodes with.
c_set, c_default, c_info = st.columns([2, 1, 3], vertical_alignment="bottom")
st.session_state[ACTIVE] = active_name
c_set.selectbox("Active threshold set", names, key=ACTIVE, on_change=on_choose,
                format_func=lambda n: f"{n}  (default)" if n == default_name else n,
                help="The set every page uses to encode activations. Saved sets live in the store.")
c_default.button("Make default", on_click=on_make_default, disabled=active_name == default_name,
                 help="The default set is the one a new session starts with.")
edited = changed_filters(draft, saved)
c_info.caption(f"Notes: {saved.notes or '—'}")
if edited:
    c_info.warning(f"Unsaved edits to filter{'s' if len(edited) > 1 else ''} {', '.join(map(str, edited))} "
                   f"(other pages still use '{active_name}' as saved).", icon="✏️")

show_flash("top")

reference = common.reference_activations()
histograms = common.reference_histograms()
f = st.radio("Filter", list(range(N_FILTERS)), key=FILTER, horizontal=True, format_func=lambda i: f"filter {i}")
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
    b3.button("Discard edits", on_click=on_discard, disabled=not edited, help=f"Back to '{active_name}' as saved.")

image, label = common.current_image()
acts = image_activations(common.target_model(), image)
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
        c_txt.caption(f"{changed} of {now.bins.size:,} cells of this image change letter against '{active_name}'.")
    st.markdown(f"**Filter {f} on the current image**")
    st.markdown(level_legend(), unsafe_allow_html=True)
    st.plotly_chart(filter_letter_grid(now.bins[f], acts[f], f), key="binning_grid")
    st.code("f" + "".join(now.grid(f)), language=None, wrap_lines=True)
    st.caption(f"The paper encoding's segment for filter {f}: the delimiter f and 196 letters, row by row.")

st.subheader("Bin occupancy on the reference set")
occupancy = occupancy_for(reference, draft.as_array()) * 100
table = pd.DataFrame(occupancy, columns=list(LETTERS), index=[f"filter {i}" for i in range(N_FILTERS)])
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
