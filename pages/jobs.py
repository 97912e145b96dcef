"""Fine-tuning jobs: submit (this machine, or a GPU box through Ray), follow, stop, resume, evaluate (§3.3)."""

import os
import re
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from interp.catalog import dataset_folders
from interp.evaluation.evaluate import EVAL_SETS
from interp.evaluation.labelled_sets import list_labelled_sets
from interp.interpreters.presets import get_preset, list_presets
from interp.interpreters.training import INTERPRETERS, LOSS_ON, FinetuneConfig, kind_defaults
from interp.jobs import control as jobs
from interp.jobs.spec import EvaluateJobConfig, JobSpec
from interp.store.db import StoreLockedError
from pages.common import paths, store, store_busy_message, store_guard
from pages.figures import loss_curve

DEFAULT_RAY_ADDRESS = os.environ.get("N2W_RAY_ADDRESS", "http://127.0.0.1:8265")
BACKEND_HELP = {"local": "Runs here as a detached process: it survives a page reload or an app restart.",
                "ray": "Submits to a Ray cluster's job server (a GPU box running `ray start --head`); "
                       "see the README, 'Running on a GPU box'."}
ACTIVE = ("queued", "running")
OTHER = "other…"


def minutes(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(text).name).strip("-.") or "run"


def dataset_names() -> list[str]:
    return [p.name for p in dataset_folders(paths().datasets_dir)]


def submit(spec_kwargs: dict) -> None:
    """Validate, submit, and say so; a bad field or an unreachable cluster is an error box, not a crash."""
    try:
        job_id = jobs.submit(JobSpec(**spec_kwargs), paths(), store())
    except (ValueError, OSError) as exc:
        st.error(f"Not submitted: {exc}")
        return
    except StoreLockedError as exc:  # the form keeps its values: submit again once the store is free
        st.error(f"Not submitted. {store_busy_message(exc)}")
        return
    st.session_state["jobs_select_next"] = job_id  # applied before the job picker is drawn
    st.success(f"Submitted {job_id}.")


st.title("Fine-tuning jobs")
st.caption("Fine-tune an interpreter with LoRA / QLoRA (§3.3) as a job: on this machine, or on a GPU box "
           "through Ray. Progress comes from each run's metrics file; job records live in the store and stay "
           "right after the app restarts (a job whose process died is marked failed with its last log lines).")

INTERPRETER_LABELS = {"text": "text", "reader": "activation reader"}
CONFIG = FinetuneConfig(dataset="", out="")  # the form starts at the CLI's defaults: one source for both

with store_guard():  # another process holding the store: a message and Retry, not a traceback
    job_records = store().list_jobs()

# --- a new job --------------------------------------------------------------------------------
datasets = dataset_names()
with st.expander("New fine-tuning job", expanded=not len(job_records)):
    if not datasets:
        st.info("No dataset yet. Build one first, e.g.\n\n"
                "    python -m interp dataset build --name compact-15k --encoder compact")
    else:
        c1, c3, c2 = st.columns([2, 1, 1])
        kind = c3.radio("Interpreter", INTERPRETERS, horizontal=True, key="jobs_interpreter",
                        format_func=INTERPRETER_LABELS.get,
                        help="text: the paper's interpreter reads the encoding as text. reader: the bins enter "
                             "the LLM as 57 soft tokens through a trained connector (≈110 tokens a sample "
                             "instead of ≈480: far more samples per CPU hour). Use a dataset built with "
                             "--encoder paper for the reader (any lossless encoder works).")
        presets = [p.name for p in list_presets()] + [OTHER]
        choice = c1.selectbox("Base model", presets, key="jobs_preset",
                              format_func=lambda n: n if n == OTHER else f"{n} — {get_preset(n).description}")
        backend = c2.radio("Run on", ["local", "ray"], horizontal=True, key="jobs_backend",
                           help=BACKEND_HELP["local"] + " " + BACKEND_HELP["ray"])
        preset_name = choice
        if choice == OTHER:
            preset_name = st.text_input("Model: a local folder or a Hugging Face id (org/name)", key="jobs_model")
        try:
            preset = get_preset(preset_name) if preset_name else None
        except (ValueError, KeyError) as exc:
            preset = None
            st.error(f"Unknown model {preset_name!r}: {exc}")
    if datasets and preset is not None:
        defaults = kind_defaults(kind, preset)
        with st.form("jobs_new"):
            a, b, c = st.columns(3)
            dataset = a.selectbox("Dataset", datasets, key="jobs_dataset")
            name = b.text_input("Run name", value=f"{slug(preset_name)}-{datetime.now():%m%d-%H%M}", key="jobs_name",
                                help="The run folder (runs/NAME) and its id in the store; a name that has "
                                     "checkpoints resumes from them.")
            max_steps = c.number_input("Max steps", min_value=1, value=100, step=10, key="jobs_steps")
            a, b, c, d, e = st.columns(5)
            lr = a.number_input("Learning rate", min_value=1e-7, max_value=1.0, value=float(defaults["learning_rate"]),
                                format="%.2e", key=f"jobs_lr_{preset_name}_{kind}",
                                help="The preset's default (the paper: 2e-3 Mistral-7B, 2.5e-5 Mixtral-8x7B); "
                                     "the reader's: 1e-3.")
            batch = b.number_input("Batch size", min_value=1, value=int(defaults["batch_size"]),
                                   key=f"jobs_batch_{preset_name}_{kind}",
                                   help="The paper: 4 Mistral-7B, 2 Mixtral-8x7B; the reader: 16.")
            accum = c.number_input("Gradient accumulation", min_value=1,
                                   value=int(preset.gradient_accumulation_steps), key=f"jobs_accum_{preset_name}")
            lora_r = d.number_input("LoRA rank", min_value=1, value=CONFIG.lora_r, key="jobs_lora_r")
            lora_alpha = e.number_input("LoRA alpha", min_value=1, value=CONFIG.lora_alpha, key="jobs_lora_alpha",
                                        help="LoRA scaling numerator (the update is scaled by alpha / rank).")
            a, b, c, d = st.columns(4)
            loss_on = a.selectbox("Loss on", LOSS_ON, index=LOSS_ON.index(CONFIG.loss_on), key="jobs_loss_on",
                                  help="'all' as the paper; 'completion': the description only.")
            eval_steps = b.number_input("Validate every", min_value=0, value=CONFIG.eval_steps, key="jobs_eval_steps")
            save_steps = c.number_input("Checkpoint every", min_value=1, value=CONFIG.save_steps,
                                        key="jobs_save_steps")
            max_train = d.number_input("Training samples (0: all)", min_value=0, value=0, key="jobs_max_train")
            ray_fields = {}
            if backend == "ray":
                a, b = st.columns(2)
                ray_fields["address"] = a.text_input("Ray dashboard address", value=DEFAULT_RAY_ADDRESS,
                                                     key="jobs_address",
                                                     help="http://HOST:8265, or the local end of an SSH tunnel.")
                ray_fields["storage"] = b.text_input(
                    "Storage", value="", key="jobs_storage",
                    help="Where the run folder goes: a path both machines see, or s3://… (fsspec). "
                         "Empty: this machine's runs folder (right when the head runs here).") or None
                a, b = st.columns(2)
                ray_fields["remote_data_dir"] = a.text_input(
                    "Data folder on the cluster", value="", key="jobs_remote_data",
                    help="Models and datasets are cached there. Empty: the same path as here.") or None
                ray_fields["num_gpus"] = float(b.number_input("GPUs", min_value=0, value=int(preset.quantize_4bit),
                                                              key="jobs_gpus"))
            submitted = st.form_submit_button("Submit", type="primary")
        if submitted:
            try:
                cfg = FinetuneConfig(dataset=dataset, out="", preset=preset_name, max_steps=int(max_steps),
                                     interpreter=kind,
                                     learning_rate=float(lr), batch_size=int(batch), grad_accum=int(accum),
                                     lora_r=int(lora_r), lora_alpha=int(lora_alpha), loss_on=loss_on,
                                     eval_steps=int(eval_steps), save_steps=int(save_steps),
                                     max_train_samples=int(max_train) or None)
                submit({"kind": "finetune", "name": name.strip(), "finetune": cfg, "backend": backend,
                        **ray_fields})
            except ValueError as exc:
                st.error(f"Not submitted: {exc}")


# --- the jobs ---------------------------------------------------------------------------------
def job_table(views: list) -> pd.DataFrame:
    return pd.DataFrame([{
        "job": v.id, "kind": v.spec.kind, "run": v.spec.name, "backend": v.backend, "status": v.status,
        "step": f"{v.step or 0}/{v.total_steps or '?'}" if v.spec.kind == "finetune" else "",
        "loss": v.last("loss"), "val loss": v.last("eval_loss"), "elapsed": minutes(v.elapsed_s),
        "ETA": minutes(v.eta_s)} for v in views])


def job_detail(v) -> None:
    st.subheader(f"{v.spec.name} · {v.status}")
    st.caption(f"{v.id} · {v.backend}{' at ' + v.spec.address if v.spec.address else ''} · run folder "
               f"`{v.location}` · elapsed {minutes(v.elapsed_s)}" + (f" · ETA {minutes(v.eta_s)}" if v.eta_s else ""))
    if v.status == "failed":
        st.error(f"The job failed: {v.message or 'no message'}")
    elif v.message:
        st.info(v.message)
    if v.spec.kind == "finetune":
        if v.metrics:
            log_y = st.toggle("Log scale", value=True, key=f"jobs_log_{v.id}",
                              help="The first steps' loss is often 10× the rest; a log axis keeps the tail readable.")
            st.plotly_chart(loss_curve(v.metrics, log_y=log_y), key=f"jobs_curve_{v.id}")
        else:
            st.info("No metrics yet: the run writes its first loss after `logging_steps` steps.")
    log = jobs.logs(v.id, paths(), store())
    st.code("\n".join(log.splitlines()[-40:]) or "(no output yet)", language=None)

    c1, c2, c3 = st.columns(3)
    if v.status in ACTIVE and c1.button("Stop", key=f"jobs_stop_{v.id}"):
        try:
            jobs.stop(v.id, paths(), store())
            st.rerun()
        except ValueError as exc:
            st.error(str(exc))
    if v.status in ("failed", "stopped") and c1.button("Resume", key=f"jobs_resume_{v.id}",
                                                       help="Fine-tuning continues from its last checkpoint."):
        try:
            jobs.resume(v.id, paths(), store())
            st.rerun()
        except ValueError as exc:
            st.error(str(exc))
    if v.spec.kind == "finetune" and v.status == "succeeded":
        eval_set = c1.selectbox("Held-out set", EVAL_SETS + tuple(list_labelled_sets(paths().labelled_dir)),
                                key=f"jobs_eval_set_{v.id}",
                                help="syn_eval: generated shapes; mnist_eval: the MNIST digits people annotated; "
                                     "syn_alt: the shape types drawn by a second renderer; file:NAME: a labelled "
                                     "set uploaded on the Compare page (data/labelled/).")
        n = c2.number_input("Samples", min_value=1, value=40, key=f"jobs_eval_n_{v.id}")
        questions = c2.checkbox("Count questions too", key=f"jobs_eval_qa_{v.id}",
                                help="Also ask one grounded count question per image (\"How many curves…\") "
                                     "and score the numbers in the answers.")
        if c3.button("Evaluate this run", key=f"jobs_eval_{v.id}",
                     help="Queues an evaluation job; its Table 1 metrics appear on the Compare page."):
            submit({"kind": "evaluate", "name": f"{v.spec.name}-{eval_set.replace(':', '-')}",
                    "evaluate": EvaluateJobConfig(run=v.spec.name, eval_set=eval_set, n=int(n),
                                                  questions=questions),
                    "backend": v.backend, "address": v.spec.address, "storage": v.spec.storage,
                    "remote_data_dir": v.spec.remote_data_dir, "num_gpus": v.spec.num_gpus})
        st.page_link("pages/chat.py", label="Chat with this interpreter", icon="💬")


@store_guard("jobs_store_retry")
def jobs_panel() -> None:
    views = jobs.list_views(paths(), store())
    if not views:
        st.info("No jobs yet: submit one above, or from a shell: `python -m interp jobs finetune --help`.")
        return
    st.dataframe(job_table(views), hide_index=True, key="jobs_table",
                 column_config={"loss": st.column_config.NumberColumn(format="%.4f"),
                                "val loss": st.column_config.NumberColumn(format="%.4f")})
    ids = [v.id for v in views]
    if st.session_state.get("jobs_select_next") in ids:
        st.session_state["jobs_selected"] = st.session_state.pop("jobs_select_next")
    if st.session_state.get("jobs_selected") not in ids:
        st.session_state["jobs_selected"] = ids[0]
    chosen = st.selectbox("Job", ids, key="jobs_selected")
    job_detail(next(v for v in views if v.id == chosen))
    st.caption(f"Updated {time.strftime('%H:%M:%S')}" + (" · refreshing every 3 s" if any(
        v.status in ACTIVE for v in views) else ""))


st.header("Jobs")
with store_guard():  # re-read: a job submitted above makes the panel refresh itself
    active = any(s in ACTIVE for s in store().list_jobs()["status"])
st.fragment(jobs_panel, run_every=3 if active else None)()
