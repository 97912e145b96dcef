"""App-side cache wrappers: the only place that holds models and reference data across reruns."""

from __future__ import annotations

import streamlit as st

from interp.settings import Paths


@st.cache_resource
def paths() -> Paths:
    return Paths.from_env()


@st.cache_resource(show_spinner="Loading the target CNN…")
def target_model():
    from interp.target import load_target

    return load_target(paths().target_dir)


@st.cache_resource(show_spinner="Loading MNIST…")
def mnist():
    from interp.mnist import load_mnist

    return load_mnist(paths().data_dir)


def store():
    """A Store is cheap: it opens a DuckDB connection per call, so other processes can write too."""
    from interp.store import Store

    return Store(paths().db_path)
