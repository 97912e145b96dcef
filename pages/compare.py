"""Compare: two stored evaluation runs side by side, as the paper's Table 1 (§4); evaluate any interpreter."""

import plotly.express as px
import streamlit as st

from interp.evaluation.evaluate import (
    DEFAULT_N,
    DISAGREEMENT_FILTERS,
    EVAL_SETS,
    disagreements,
    eval_images,
    evaluation_runs,
    metrics_table,
    per_shape_table,
    slug,
)
from interp.evaluation.labelled_sets import list_labelled_sets, save_labelled_upload
from interp.jobs import control as jobs
from interp.jobs.spec import EvaluateJobConfig, JobSpec
from interp.store.db import StoreLockedError
from pages.common import active_jobs, interpreter_choices, job_progress, mnist, paths, store, store_busy_message

HOW_TO = """Evaluate an interpreter above, or from a shell, e.g.:

    python -m interp evaluate --run runs/NAME --set syn_eval --questions
    python -m interp evaluate --run base:smollm2-135m --set syn_eval
    python -m interp baseline majority --dataset NAME
    python -m interp baseline probe --dataset NAME
"""
FILTER_LABELS = {"disagree": "Only where they disagree", "both_wrong": "Only where both are wrong", "all": "All samples"}
WATCH = "compare_watch"
"""Evaluation jobs submitted from this page: their end reloads the table and says how they ended."""
SET_HELP = ("syn_eval: held-out generated shapes (the paper's D_syn_eval); mnist_eval: the MNIST digits people "
            "annotated; syn_alt: the same shape types drawn by a second renderer; file:NAME: a labelled set you "
            "uploaded above (or saved in data/labelled/).")
UPLOAD_HELP = ("An .npz with `images` (uint8 [n, 28, 28], white on black) and either `counts` (int [n, 8], in the "
               "order diagonal, anti-diagonal, vertical, horizontal, checkerboard, ellipse, corner, crossing) or "
               "`descriptions` (n strings such as \"Image with 2 shapes: 1 corner, 1 ellipse\"). Checked, then saved "
               "as data/labelled/NAME.npz.")


def submit_evaluation(choice, eval_set: str, n: int, questions: bool) -> None:
    run = EvaluateJobConfig.run_ref(choice.kind, choice.spec)
    name = slug(f"eval-{run.split(':', 1)[-1]}-{eval_set}-{n}")[:64]
    try:
        spec = JobSpec(kind="evaluate", name=name,
                       evaluate=EvaluateJobConfig(run=run, eval_set=eval_set, n=n, questions=questions,
                                                  batch_size=50 if choice.reader else 8))
        job_id = jobs.submit(spec, paths(), store())
    except (ValueError, OSError) as exc:
        st.error(f"Not submitted: {exc}")
        return
    except StoreLockedError as exc:
        st.error(f"Not submitted. {store_busy_message(exc)}")
        return
    st.session_state.setdefault(WATCH, set()).add(job_id)
    st.success(f"Queued {job_id}: its results appear below when it ends (run id `{name}`).")


def evaluation_progress() -> None:
    """Active evaluation jobs as progress bars; when one this page started ends, say how and reload the page."""
    ended = job_progress("evaluate", WATCH, starting="starting (loading the model)")
    for v in ended:
        st.session_state.setdefault("compare_flash", []).append(
            (v.status, f"Evaluation `{v.spec.name}` {v.status}" + (f": {v.message}" if v.message else ".")))
    if ended:
        st.rerun(scope="app")


st.title("Compare interpreters")
st.caption("Table 1 of the paper for any two stored runs on the same held-out set: fine-tuned interpreters, "
           "the base model before fine-tuning, and the majority and activation-probe baselines. Runs marked "
           "*shipped* are the results that come with the project (`assets/results/`, loaded at setup).")

for status, text in st.session_state.pop("compare_flash", []):
    (st.success if status == "succeeded" else st.error)(text)

runs = evaluation_runs(store())
with st.expander("Evaluate an interpreter", expanded=len(runs) < 2):
    choices = [c for c in interpreter_choices() if c.kind in ("shipped", "run", "base")]
    upload = st.file_uploader("Your own labelled set (optional)", type=["npz"], key="compare_upload", help=UPLOAD_HELP)
    if upload is not None and st.session_state.get("compare_uploaded") != upload.file_id:
        try:
            saved, n_saved = save_labelled_upload(upload.getvalue(), upload.name, paths().labelled_dir)
        except ValueError as exc:
            st.error(f"Not saved:\n\n```\n{exc}\n```")
        else:
            st.session_state["compare_uploaded"] = upload.file_id
            st.success(f"Saved {n_saved} images as `{saved}`: pick it as the held-out set.")
    with st.form("compare_evaluate"):
        a, b, c = st.columns([3, 1, 1])
        pick = a.selectbox("Interpreter", range(len(choices)), format_func=lambda i: choices[i].label,
                           key="compare_eval_interpreter")
        eval_set = b.selectbox("Held-out set", EVAL_SETS + tuple(list_labelled_sets(paths().labelled_dir)),
                               key="compare_eval_set", help=SET_HELP)
        n = c.number_input("Images", min_value=1, max_value=5000, value=DEFAULT_N, key="compare_eval_n",
                           help="mnist_eval has as many as people annotated (60 shipped); fewer are used then.")
        questions = st.checkbox("Count questions too", value=True, key="compare_eval_qa",
                                help="One grounded question per image (\"How many curves…\"), scored on the "
                                     "number the answer gives.")
        go = st.form_submit_button("Evaluate", type="primary",
                                   help="Queues an evaluation job on this machine (Fine-tuning jobs page lists it). "
                                        "The reader takes ~2 min for 500 images; a text interpreter ~1.5 s an image.")
    if go and choices:
        if not choices[pick].available:
            st.error(f"Not submitted: {choices[pick].hint}")
        else:
            submit_evaluation(choices[pick], eval_set, int(n), questions)
st.fragment(evaluation_progress, run_every=2 if active_jobs("evaluate") else None)()

if len(runs) < 2:
    st.info(f"{len(runs)} evaluated run(s) in the store; comparing needs two.\n\n{HOW_TO}")
    st.stop()

sets = sorted(runs["eval_set"].unique())
eval_set = st.selectbox("Held-out set", sets, key="compare_set")
on_set = runs[runs["eval_set"] == eval_set].reset_index(drop=True)
if len(on_set) < 2:
    st.info(f"Only one run is evaluated on {eval_set}.\n\n{HOW_TO}")
    st.stop()

labels = dict(zip(on_set["run_id"], on_set["label"], strict=True))
ids = list(on_set["run_id"])
c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
run_a = c1.selectbox("Interpreter A", ids, index=0, format_func=labels.get, key="compare_a")
run_b = c2.selectbox("Interpreter B", ids, index=1, format_func=labels.get, key="compare_b")
show_paper = c3.toggle("Paper's figures", value=True, key="compare_paper",
                       help="Table 1 as published: Mistral-7B and Mixtral-8x7B on 100 synthetic images.")
if run_a == run_b:
    st.warning("Pick two different runs.")
    st.stop()

metrics = store().get_metrics()
metrics = metrics[metrics["eval_set"] == eval_set].set_index("run_id")["metrics"]
columns = {labels[run_a]: metrics[run_a], labels[run_b]: metrics[run_b]}

st.subheader("Table 1")
table = metrics_table(columns, paper=show_paper)
st.dataframe(table, column_config={c: st.column_config.NumberColumn(c, format="%.4f") for c in table.columns},
             key="compare_table", height=36 * (len(table) + 1) + 3)  # every row, no scroll box
st.caption(f"n = {metrics[run_a]['n']} and {metrics[run_b]['n']} samples. FDR = 1 − precision is the column the "
           "paper calls FPR; true FPR counts predicted shapes among the (sample, shape type) pairs with none.")
d1, d2, _ = st.columns([1, 1, 3])
d1.download_button("Download CSV", table.to_csv(float_format="%.4f"), file_name=f"table1-{eval_set}.csv",
                   mime="text/csv", key="compare_csv")
d2.download_button("Download Markdown", table.to_markdown(floatfmt=".4f"), file_name=f"table1-{eval_set}.md",
                   mime="text/markdown", key="compare_md")

st.subheader("Per shape type")
shapes = per_shape_table(columns)
fig = px.bar(shapes, x="shape", y="value", color="run", barmode="group", facet_row="measure",
             hover_data=["label", "tp", "fp", "fn"], range_y=[0, 1.05], height=520)
fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
st.plotly_chart(fig, key="compare_shapes")
no_support = sorted({f"{r.shape} ({r.run})" for r in shapes.itertuples() if r.label == "n/a"})
if no_support:
    st.caption("n/a (no bar): no image holds the type and the run never names it, so precision and recall have "
               "nothing to measure — " + ", ".join(no_support) + ".")

st.subheader("Samples")
which = st.radio("Show", DISAGREEMENT_FILTERS, format_func=FILTER_LABELS.get, horizontal=True, key="compare_filter")
samples = disagreements(store().get_predictions(run_a, eval_set), store().get_predictions(run_b, eval_set), which)
st.caption(f"{len(samples)} sample(s). A = {labels[run_a]}, B = {labels[run_b]}; 'correct' means every shape count "
           "matches the ground truth.")
st.dataframe(samples, hide_index=True, key="compare_samples")

if len(samples):
    pick = st.selectbox("Look at sample", samples["sample_index"].tolist(), key="compare_pick")
    row = samples[samples["sample_index"] == pick].iloc[0]
    run_config = store().get_run(run_a).config
    try:
        image = eval_images(eval_set, run_config, [pick], mnist().test.images if eval_set == "mnist_eval" else None)[0]
    except (KeyError, ValueError):
        image = None
    i1, i2 = st.columns([1, 3])
    if image is not None:
        i1.image(image, width=168, caption=f"{eval_set} #{pick}")
    i2.markdown(f"**Truth** — {row['truth']}")
    i2.markdown(f"**A** {'✅' if row['A correct'] else '❌'} — {row['prediction A']}")
    i2.markdown(f"**B** {'✅' if row['B correct'] else '❌'} — {row['prediction B']}")
