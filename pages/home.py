"""Home: where to start, how the shipped interpreters do, and the status of each stage."""

import streamlit as st

from interp.evaluation.evaluate import evaluation_runs
from interp.status import pipeline_status
from pages.common import paths, store

st.title("Neurons to Words")
st.caption("Describe what a CNN's first convolutional layer sees, in words, with a fine-tuned language model "
           "(after *Neurons to Words*, §3–4).")

steps = ["Image 28×28", "Target CNN conv1", "Activations 8×14×14", "Encoding z/l/m/h/v",
         "Interpreter LLM + LoRA", "Description"]
st.markdown("  →  ".join(f"**{s}**" for s in steps))

st.subheader("Start here")
st.page_link("pages/input.py", label="1 · Draw a digit, upload an image or pick an MNIST one", icon="✏️")
st.page_link("pages/activations.py", label="2 · See its 8 conv1 maps (8×14×14) and their z/l/m/h/v encoding",
             icon="🔥")
st.page_link("pages/chat.py", label="3 · Ask the shipped interpreter what it reads there (\"How many curves?\")",
             icon="💬")
st.page_link("pages/compare.py", label="4 · See how the shipped interpreters do on held-out images (Table 1)",
             icon="⚖️")

runs = evaluation_runs(store())
shipped = runs[runs["shipped"]] if len(runs) else runs
if len(shipped):
    st.caption("Shipped results (loaded at setup from `assets/results/`): share of held-out images described "
               "exactly, and F1 over shape types.")
    table = shipped[["label", "eval_set", "n", "accuracy", "f1"]].rename(
        columns={"label": "run", "eval_set": "held-out set", "accuracy": "exact"})
    st.dataframe(table, hide_index=True, key="home_results",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("exact", "f1")})

st.subheader("Status")
for stage in pipeline_status(paths()):
    icon = "✅" if stage.ready else "⚠️"
    st.markdown(f"{icon} **{stage.stage}** — {stage.detail}")
