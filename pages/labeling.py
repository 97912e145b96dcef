"""Labeling: human annotation of MNIST digits (D_mnist) and human evaluation of interpreter outputs (§4.1–4.2)."""

import streamlit as st

from interp.evaluation import labeling
from interp.interpreters import chat
from interp.language import SHAPES, format_description, parse_description
from interp.pipeline import describe_image, thresholds_for
from interp.store.db import StoreLockedError
from pages.common import (
    active_threshold_set,
    interpreter,
    interpreter_choices,
    mnist,
    note_store_busy,
    store,
    store_guard,
    target_model,
    unless_store_busy,
)
from pages.figures import upscale

st.title("Labeling")
st.caption("Count the shapes in MNIST digits (the paper annotated the first 100 test images, §4.1) and judge "
           "interpreter outputs on held-out digits (§4.2). Every action is saved to the store at once.")

test = mnist().test
n_test = len(test)
name = st.text_input("Your name (saved with every label and rating)", key="lab_annotator",
                     placeholder="e.g. alice").strip()
COUNT_KEYS = {s: f"lab_n_{s}" for s in SHAPES}


def annotator() -> str:
    """The name as typed now (callbacks run before the script reads the widget again)."""
    return str(st.session_state.get("lab_annotator") or "").strip()


def flash(kind: str, text: str) -> None:
    st.session_state["lab_flash"] = (kind, text)


# --- Annotate: navigation and saving (callbacks, so widget state can be set before the widgets exist) -------
def load_counts(index: int) -> None:
    """Put the annotator's stored counts for ``index`` (or zeros) into the inputs."""
    who = annotator()
    record = db.get_annotation(who, labeling.IMAGE_SOURCE, index) if who else None
    counts = record.counts if record else labeling.empty_counts()
    for s, key in COUNT_KEYS.items():
        st.session_state[key] = int(counts.get(s, 0))
    st.session_state["lab_index"] = index
    st.session_state["lab_loaded"] = (who, index)
    st.session_state.pop("lab_suggestion", None)


def current_counts() -> dict[str, int]:
    return {s: int(st.session_state.get(key) or 0) for s, key in COUNT_KEYS.items()}


@unless_store_busy("Image #{0} was not opened")
def go(index: int) -> None:
    load_counts(max(0, min(n_test - 1, index)))


def save_and_next() -> None:
    """Save, then move on; a save the store refused changes nothing: the counts stay in their inputs."""
    who, index, counts = annotator(), st.session_state["lab_index"], current_counts()
    if not who:
        flash("error", "Enter your name first: every label carries its annotator.")
        return
    try:
        db.save_annotation(who, labeling.IMAGE_SOURCE, index, counts, labeling.describe_counts(counts))
    except StoreLockedError as exc:
        note_store_busy(f"Image #{index} was NOT saved (your counts are still in the form: press Save & next "
                        "again)", exc)
        return
    flash("success", f"Saved image #{index}: {labeling.describe_counts(counts)}")
    next_image(who, index)


@unless_store_busy("Image #{1} was saved, but the next image was not opened")
def next_image(who: str, index: int) -> None:
    done = labeling.annotated_indices(db.list_annotations(who, labeling.IMAGE_SOURCE), who)
    nxt = labeling.next_unannotated(done, index + 1, labeling.N_ANNOTATE)
    go(index + 1 if nxt is None or index >= labeling.N_ANNOTATE else nxt)


@unless_store_busy("Your label of image #{1} was not deleted")
def delete_label(annotation_id: int, index: int) -> None:
    db.delete_annotation(annotation_id)
    flash("info", f"Deleted your label of image #{index}.")
    go(index)


def use_suggestion() -> None:
    for s, n in st.session_state["lab_suggestion"]["counts"].items():
        st.session_state[COUNT_KEYS[s]] = int(n)


def suggest(spec: str, index: int) -> None:
    """Ask the best available interpreter for a description of image ``index``; shown, never saved."""
    choice = next(c for c in interpreter_choices() if c.spec == spec)
    try:
        thresholds = thresholds_for(choice.thresholds, lambda: active_threshold_set(choice.layer), choice.layer)
        said = describe_image(interpreter(spec), target_model(), test.images[index], thresholds)
    except StoreLockedError as exc:
        note_store_busy("No suggestion (the threshold set is in the store)", exc)
        return
    except Exception as exc:  # model missing or broken: say so, keep the page
        flash("error", chat.load_error_message(spec, exc, choice.preset))
        return
    st.session_state["lab_suggestion"] = {"index": index, "model": choice.label, "text": said.text,
                                          "counts": said.counts}


# --- Rate: callbacks ------------------------------------------------------------------------------------------
@unless_store_busy("Your verdict was not saved (your notes are kept: press the verdict again)")
def rate(run_id: str, row: dict, verdict: str, n_predictions: int) -> None:
    if not annotator():
        flash("error", "Enter your name first: every rating carries its rater.")
        return
    notes = labeling.per_shape_notes({s: st.session_state.get(f"rate_note_{s}", "") for s in SHAPES})
    db.save_rating(annotator(), run_id, labeling.IMAGE_SOURCE, int(row["sample_index"]), row["prediction"], verdict,
                   per_shape=notes, comment=st.session_state.get("rate_comment", "").strip())
    flash("success", f"Rated image #{int(row['sample_index'])} {labeling.VERDICT_LABELS[verdict]}.")
    for s in SHAPES:
        st.session_state[f"rate_note_{s}"] = ""
    st.session_state["rate_comment"] = ""
    st.session_state["rate_pos"] = min(st.session_state.get("rate_pos", 0) + 1, n_predictions - 1)


def rate_go(pos: int, n_predictions: int) -> None:
    st.session_state["rate_pos"] = max(0, min(n_predictions - 1, pos))


if msg := st.session_state.pop("lab_flash", None):
    getattr(st, msg[0])(msg[1])

with store_guard():  # another process holding the store: a message and Retry, not a traceback
    db = store()
    annotate_tab, rate_tab, agree_tab, io_tab = st.tabs(["Annotate", "Rate", "Agreement", "Import / export"])

    # --- Annotate ------------------------------------------------------------------------------------------------
    with annotate_tab:
        if not name:
            st.info("Enter your name above to start labelling: every record carries its annotator.")
        else:
            mine = db.list_annotations(name, labeling.IMAGE_SOURCE)
            done = labeling.annotated_indices(mine, name)
            if st.session_state.get("lab_loaded", (None,))[0] != name:  # first visit or another annotator
                start = labeling.next_unannotated(done, 0, labeling.N_ANNOTATE)
                load_counts(labeling.N_ANNOTATE if start is None else start)
            index = st.session_state["lab_index"]
            n_done, total = labeling.progress(done)
            st.progress(n_done / total, text=f"{n_done} of {total} annotated by {name} (MNIST test images 0–{total - 1})")

            img_col, form_col = st.columns([1, 2.2], gap="large")
            record = db.get_annotation(name, labeling.IMAGE_SOURCE, index)
            with img_col:
                st.image(upscale(test.images[index], 196), caption=f"MNIST test #{index} (digit {int(test.labels[index])})")
                st.caption(f"Your saved label: {record.description}" if record else "Not labelled by you yet.")
            with form_col:
                st.markdown("**How many of each shape?** Type a number, Tab to the next field, Enter to apply.")
                grid = st.columns(4)
                for i, s in enumerate(SHAPES):
                    grid[i % 4].number_input(s, min_value=0, max_value=99, step=1, key=COUNT_KEYS[s])
                counts = current_counts()
                st.markdown(f"Description: **{format_description(counts)}**")
                b1, b2, b3, b4 = st.columns(4)
                b1.button("💾 Save & next", key="lab_save", type="primary", on_click=save_and_next,
                          use_container_width=True)
                b2.button("⏭ Skip", key="lab_skip", on_click=go, args=(index + 1,), use_container_width=True,
                          help="Leave this image unlabelled and go to the next one.")
                b3.button("⏮ Back", key="lab_back", on_click=go, args=(index - 1,), disabled=index == 0,
                          use_container_width=True)
                if record is not None:
                    b4.button("🗑 Delete my label", key="lab_delete", on_click=delete_label, args=(record.id, index),
                              use_container_width=True)
                g1, g2 = st.columns([1, 1], vertical_alignment="bottom")
                target = int(g1.number_input("Go to image #", 0, n_test - 1, index, key="lab_goto"))
                g2.button("Go (to edit a label)", key="lab_go", on_click=go, args=(target,))

                best = next((c for c in interpreter_choices() if c.available), None)
                if best is not None:
                    st.button(f"💡 Suggest counts with {best.label}", key="lab_suggest", on_click=suggest,
                              args=(best.spec, index), help="Runs the interpreter once on this image; nothing is saved.")
                suggestion = st.session_state.get("lab_suggestion")
                if suggestion and suggestion["index"] == index:
                    st.info(f"**Suggestion** from {suggestion['model']} (not saved, check it): "
                            f"{labeling.describe_counts(suggestion['counts'])}\n\nRaw output: `{suggestion['text']}`")
                    st.button("Use suggestion", key="lab_use_suggestion", on_click=use_suggestion)

            with st.expander(f"Your labels ({len(mine)})"):
                if mine.empty:
                    st.caption("None yet.")
                else:
                    st.dataframe(mine[["image_index", "description", "updated_at"]], hide_index=True)

    # --- Rate ------------------------------------------------------------------------------------------------------
    with rate_tab:
        runs = labeling.runs_with_predictions(db)
        all_ratings = db.list_ratings()
        if not runs:
            st.info(f"No evaluation run has predictions on `{labeling.EVAL_SET}` (held-out MNIST test images) yet. "
                    f"Evaluate an interpreter on it, e.g. `python -m interp evaluate --run runs/NAME --set "
                    f"{labeling.EVAL_SET}` (or from the Compare page); its predictions are stored per image and "
                    "appear here to be rated.")
        elif not name:
            st.info("Enter your name above to rate.")
        else:
            run_id = st.selectbox("Interpreter run", runs, key="rate_run")
            preds = db.get_predictions(run_id, labeling.EVAL_SET).reset_index(drop=True)
            done = labeling.rated_indices(all_ratings, name, run_id)
            if st.session_state.get("rate_for") != (name, run_id):
                todo = [i for i, r in preds.iterrows() if int(r["sample_index"]) not in done]
                st.session_state["rate_pos"] = todo[0] if todo else 0
                st.session_state["rate_for"] = (name, run_id)
            pos = min(st.session_state.get("rate_pos", 0), len(preds) - 1)
            row = preds.iloc[pos].to_dict()
            index = int(row["sample_index"])
            n_rated = sum(int(i) in done for i in preds["sample_index"])
            st.progress(n_rated / len(preds), text=f"{n_rated} of {len(preds)} predictions of {run_id} rated by {name}")

            img_col, pred_col = st.columns([1, 2.2], gap="large")
            with img_col:
                st.image(upscale(test.images[index], 196), caption=f"MNIST test #{index} (digit {int(test.labels[index])})")
            with pred_col:
                st.markdown(f"**Prediction {pos + 1} of {len(preds)}**")
                st.code(row["prediction"] or "(empty)", language=None, wrap_lines=True)
                st.caption(f"Read as: {labeling.describe_counts(parse_description(row['prediction'] or '').counts)}")
                if row.get("truth"):
                    st.caption(f"Annotation in the eval set: {row['truth']}")
                mine_label = db.get_annotation(name, labeling.IMAGE_SOURCE, index)
                if mine_label is not None:
                    st.caption(f"Your own label: {mine_label.description}")
                with st.expander("Per-shape notes (optional)"):
                    grid = st.columns(4)
                    for i, s in enumerate(SHAPES):
                        grid[i % 4].selectbox(s, labeling.SHAPE_NOTES, key=f"rate_note_{s}")
                st.text_input("Comment (optional)", key="rate_comment")
                v1, v2, v3 = st.columns(3)
                for col, verdict, icon in zip((v1, v2, v3), labeling.VERDICT_LABELS, ("✅", "🟡", "❌"), strict=True):
                    col.button(f"{icon} {labeling.VERDICT_LABELS[verdict].capitalize()}", key=f"rate_{verdict}",
                               on_click=rate, args=(run_id, row, verdict, len(preds)), use_container_width=True)
                n1, n2 = st.columns(2)
                n1.button("⏮ Previous", key="rate_prev", on_click=rate_go, args=(pos - 1, len(preds)),
                          disabled=pos == 0, use_container_width=True)
                n2.button("⏭ Next", key="rate_next", on_click=rate_go, args=(pos + 1, len(preds)),
                          disabled=pos >= len(preds) - 1, use_container_width=True)

        summary = labeling.rating_summary(all_ratings)
        if not summary.empty:
            st.subheader("Verdicts per interpreter")
            st.caption("Each rater's latest verdict per image, as §4 reports it (“12 out of 20”, “18 out of 20”).")
            for r in summary.itertuples():
                st.markdown(f"**{r.run_id}** · {r.rater}: **{r.summary}** ({r.partial} partly, {r.wrong} wrong)")
            st.dataframe(summary, hide_index=True)

    # --- Agreement ----------------------------------------------------------------------------------------------
    with agree_tab:
        everyone = db.list_annotations(image_source=labeling.IMAGE_SOURCE)
        pairs = labeling.annotator_pairs(everyone)
        if pairs.empty:
            st.info("Agreement needs two annotators who labelled the same images.")
        else:
            st.dataframe(pairs, hide_index=True)
            names = sorted(set(pairs["annotator_a"]) | set(pairs["annotator_b"]))
            a1, a2 = st.columns(2)
            who_a = a1.selectbox("Annotator A", names, index=0, key="agree_a")
            who_b = a2.selectbox("Annotator B", names, index=min(1, len(names) - 1), key="agree_b")
            table = labeling.agreement(everyone, who_a, who_b)
            st.caption(f"Cohen's kappa per shape type over the {int(table['n_images'].iloc[0])} images both labelled; "
                       "each count is a category. Empty where both always gave the same count (kappa undefined).")
            st.dataframe(table, hide_index=True,
                         column_config={"observed": st.column_config.NumberColumn(format="%.2f"),
                                        "kappa": st.column_config.NumberColumn(format="%.3f")})

    # --- Import / export ------------------------------------------------------------------------------------------
    with io_tab:
        everyone = db.list_annotations()
        st.markdown(f"**Export** {len(everyone)} annotations")
        e1, e2, e3 = st.columns(3)
        e1.download_button("Annotations (.csv)", labeling.annotations_to_csv(everyone), file_name="annotations.csv",
                           mime="text/csv", key="lab_dl_csv")
        e2.download_button("Annotations (.jsonl)", labeling.annotations_to_jsonl(everyone), file_name="annotations.jsonl",
                           mime="application/json", key="lab_dl_jsonl")
        e3.download_button("Ratings (.csv)", labeling.ratings_to_csv(db.list_ratings()), file_name="ratings.csv",
                           mime="text/csv", key="lab_dl_ratings")

        st.markdown("**Import** a CSV of annotations")
        st.caption(f"Columns: `{','.join(labeling.CSV_COLUMNS)}` (optionally `description`, rebuilt from the counts). "
                   f"Counts are whole numbers ≥ 0; image_index is an MNIST test index 0–{n_test - 1}. A label of the "
                   "same annotator and image is replaced.")
        upload = st.file_uploader("CSV file", type=["csv"], key="lab_import")
        if upload is not None:
            report = labeling.parse_annotation_csv(upload.getvalue(), n_test)
            if not report.ok:
                st.error(f"{upload.name} was not imported: {report.error}")
            else:
                st.markdown(f"{len(report.rows)} valid rows, {len(report.rejected)} rejected.")
                if report.rejected:
                    st.warning("Rejected rows (line numbers count the header as line 1):")
                    st.dataframe([{"line": line, "reason": reason} for line, reason in report.rejected], hide_index=True)
                if report.rows and st.button(f"Import {len(report.rows)} valid rows", key="lab_import_go", type="primary"):
                    try:
                        n = labeling.import_annotations(db, report.rows)
                    except StoreLockedError:
                        st.error("Nothing was imported (an import is all or nothing): press Import again once the "
                                 "store is free.")
                        raise
                    st.success(f"Imported {n} annotations from {upload.name}.")
