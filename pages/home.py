"""Home: the pipeline at a glance and the status of each stage."""

import streamlit as st

from interp.status import pipeline_status
from pages.common import paths

st.title("Neurons to Words")
st.caption("Describe what a CNN's first convolutional layer sees, in words, with a fine-tuned language model "
           "(after *Neurons to Words*, §3–4).")

steps = ["Image 28×28", "Target CNN conv1", "Activations 8×14×14", "Encoding z/l/m/h/v",
         "Interpreter LLM + LoRA", "Description"]
st.markdown("  →  ".join(f"**{s}**" for s in steps))

st.subheader("Status")
for stage in pipeline_status(paths()):
    icon = "✅" if stage.ready else "⚠️"
    st.markdown(f"{icon} **{stage.stage}** — {stage.detail}")
