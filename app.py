"""Neurons to Words: the Streamlit app. Pages only render; the work lives in `interp/`."""

import streamlit as st

st.set_page_config(page_title="Neurons to Words", page_icon="🧠", layout="wide")

PAGES = {
    "Overview": [st.Page("pages/home.py", title="Home", icon="🏠", default=True)],
}

st.navigation(PAGES).run()
