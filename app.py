"""Neurons to Words: the Streamlit app. Pages only render; the work lives in `interp/`."""

from pathlib import Path

import streamlit as st

from pages.common import store_guard, sync_image_with_url

st.set_page_config(page_title="Neurons to Words", page_icon="🧠", layout="wide")

HERE = Path(__file__).parent
LAYOUT = {
    "Overview": [("home", "Home", "🏠")],
    "Explore": [("input", "Draw & upload", "✏️"), ("activations", "Activations", "🔥"),
                ("shapes", "Shapes", "🔷"), ("binning", "Binning", "🎚️"), ("filters", "Filters", "🔍"),
                ("intervene", "Intervene", "🧪")],
    "Interpret": [("chat", "Chat", "💬"), ("compare", "Compare", "⚖️"), ("jobs", "Fine-tuning jobs", "🚀"),
                  ("labeling", "Labeling", "🏷️")],
}

pages = {}
for group, items in LAYOUT.items():
    found = [st.Page(HERE / "pages" / f"{name}.py", title=title, icon=icon, default=name == "home")
             for name, title, icon in items if (HERE / "pages" / f"{name}.py").exists()]
    if found:
        pages[group] = found

sync_image_with_url()  # a reload keeps the drawn / uploaded / picked image
with store_guard("app_store_retry"):  # any page: the store held by another process is a message, not a traceback
    st.navigation(pages).run()
