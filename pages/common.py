"""App-side state and caches: the only place that holds models and reference data across reruns.

Shared across pages through ``st.session_state``: the current image (uint8 [28, 28]) with a
label saying where it came from, and the name of the active threshold set of each layer
(`thresholds_key`: conv1's under THRESHOLDS_KEY, the one every interpreter page uses).

While another process holds the DuckDB file, store calls raise `StoreLockedError`: a page runs its
store work inside `store_guard()` (a message and a Retry button instead of a traceback), and a callback
whose write failed leaves the user's input as it is and says so with `note_store_busy`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import streamlit as st

from interp.data.images import ImageError, image_from_token, image_to_token
from interp.settings import Paths
from interp.target.layers import DEFAULT_LAYER

IMAGE_KEY = "current_image"
IMAGE_LABEL_KEY = "current_image_label"
THRESHOLDS_KEY = "active_threshold_set"


def thresholds_key(layer: str = DEFAULT_LAYER) -> str:
    """Session key of ``layer``'s active threshold set: THRESHOLDS_KEY for conv1 (what the interpreters read)."""
    return THRESHOLDS_KEY if layer == DEFAULT_LAYER else f"{THRESHOLDS_KEY}_{layer}"


@st.cache_resource
def paths() -> Paths:
    return Paths.from_env()


@st.cache_resource(show_spinner="Loading the target CNN…")
def target_model():
    from interp.target.cnn import load_target

    return load_target(paths().target_dir)


@st.cache_resource(show_spinner="Loading MNIST…")
def mnist():
    from interp.data.mnist import load_mnist

    return load_mnist(paths().data_dir)


@st.cache_resource(show_spinner="Loading tokenizer…")
def tokenizer(preset: str = "smollm2-135m"):
    """None when the model is not fetched (pages then show character counts only)."""
    from interp.interpreters.models import ModelUnavailable, load_tokenizer

    try:
        return load_tokenizer(preset, paths().models_dir)
    except (ModelUnavailable, OSError, KeyError):
        return None


def store():
    """A Store is cheap: it opens a DuckDB connection per call, so other processes can write too."""
    from interp.store.db import Store

    return Store(paths().db_path)


STORE_BUSY_NOTE_KEY = "store_busy_note"


def store_busy_message(exc) -> str:
    """What a `StoreLockedError` means for the user, in one paragraph."""
    holder = f"process {exc.holder_pid}" if exc.holder_pid else "another process"
    return (f"The store is busy: {holder} holds `{exc.path}` (waited {exc.waited:g} s). DuckDB lets one "
            "process at a time open the file, so this page can read and save again once that process lets go "
            "(a script or notebook with the file open, or a job recording its results). Nothing you entered "
            "here is lost: press Retry then.")


def note_store_busy(what: str, exc) -> None:
    """From a callback whose store call failed: the page's next run says that ``what`` did not happen."""
    st.session_state[STORE_BUSY_NOTE_KEY] = f"{what}. {store_busy_message(exc)}"


def unless_store_busy(what: str):
    """Decorate a widget callback that uses the store (reading or writing before it changes any state):
    when the store is busy it stops there, and the page's next run says that ``what`` did not happen."""
    def decorate(callback):
        @functools.wraps(callback)
        def run(*args, **kwargs):
            from interp.store.core import StoreLockedError

            try:
                return callback(*args, **kwargs)
            except StoreLockedError as exc:
                note_store_busy(what.format(*args, **kwargs), exc)
                return None

        return run

    return decorate


@contextmanager
def store_guard(key: str = "store_retry") -> Iterator[None]:
    """Run a page's (or a fragment's) store work; while another process holds the store, show why with a
    Retry button and stop this run cleanly: widget values stay in the session, nothing is cleared.
    Also usable as a decorator (``@store_guard("key")``)."""
    from interp.store.core import StoreLockedError

    if note := st.session_state.pop(STORE_BUSY_NOTE_KEY, None):
        st.error(note, icon="💾")
    try:
        yield
    except StoreLockedError as exc:
        st.error(store_busy_message(exc), icon="⏳")
        st.button("Retry", key=key, type="primary")
        st.stop()


URL_IMAGE, URL_LABEL = "image", "label"


def sync_image_with_url() -> None:
    """Keep the current image in the URL (`?image=…&label=…`), so a reload, which starts a new session,
    gets it back instead of MNIST #0; app.py calls this before every page."""
    token = st.query_params.get(URL_IMAGE)
    if IMAGE_KEY not in st.session_state:
        if not token:
            return
        try:
            image = image_from_token(token)
        except ImageError as exc:
            st.warning(f"{exc}: starting from MNIST test #0.")
            del st.query_params[URL_IMAGE]
            return
        set_current_image(image, st.query_params.get(URL_LABEL) or "image from the link")
    elif token != image_to_token(st.session_state[IMAGE_KEY]):
        set_current_image(st.session_state[IMAGE_KEY], st.session_state[IMAGE_LABEL_KEY])


def current_image() -> tuple[np.ndarray, str]:
    """The image every page works on; the first MNIST test digit until the user picks another."""
    if IMAGE_KEY not in st.session_state:
        data = mnist()
        set_current_image(data.test.images[0], f"MNIST test #0 (label {int(data.test.labels[0])})")
    return st.session_state[IMAGE_KEY], st.session_state[IMAGE_LABEL_KEY]


def set_current_image(image: np.ndarray, label: str) -> None:
    st.session_state[IMAGE_KEY] = np.asarray(image, dtype=np.uint8)
    st.session_state[IMAGE_LABEL_KEY] = label
    st.query_params[URL_IMAGE] = image_to_token(st.session_state[IMAGE_KEY])
    st.query_params[URL_LABEL] = label


def active_threshold_set(layer: str = DEFAULT_LAYER):
    """``layer``'s ThresholdSet chosen on the Binning page, else the store's default for that layer (else its first
    stored set); for a layer other than conv1 with no stored set, the calibrated heuristic on the reference set
    (`calibrated_thresholds`)."""
    from interp.store.thresholds import to_threshold_set

    name = st.session_state.get(thresholds_key(layer))
    record = store().get_threshold_set(name) if name else None
    if record is None or record.layer != layer:
        record = store().get_threshold_set(layer=layer)
    if record is None:  # no default: the first stored set of the layer, as the Binning page shows it
        names = store().list_threshold_sets(layer=layer)["name"]
        record = store().get_threshold_set(names.iloc[0]) if len(names) else None
    if record is None and layer != DEFAULT_LAYER:
        return calibrated_thresholds(layer)
    if record is None:
        st.error("No threshold set in the store: run `python -m interp setup`.")
        st.stop()
    return to_threshold_set(record)


# --- Binning and Filters pages: reference statistics and filter pictures ---------------------------

@st.cache_resource(show_spinner="Computing the reference set's activations…")
def reference_activations(n_synthetic: int = 1000, n_mnist: int = 1000, layer: str = DEFAULT_LAYER) -> np.ndarray:
    """Read-only float32 [n, C, S, S] of ``layer`` ([n, 8, 14, 14] for conv1): generated shapes + a seeded
    MNIST-train sample (`interp.encoding.reference`)."""
    from interp.encoding.reference import reference_images
    from interp.target.activations import capture

    acts = capture(target_model(), reference_images(mnist().train.images, n_synthetic, n_mnist), layer)
    acts.setflags(write=False)  # shared by every session: nobody may edit it in place
    return acts


@st.cache_resource
def reference_histograms(bins: int = 60, layer: str = DEFAULT_LAYER):
    """Per-filter histograms of `reference_activations()` of ``layer``: C × (counts, edges)."""
    from interp.encoding.tuning import filter_histograms

    return filter_histograms(reference_activations(layer=layer), bins)


@st.cache_resource(show_spinner="Calibrating thresholds on the reference set…")
def calibrated_thresholds(layer: str = DEFAULT_LAYER):
    """The project's heuristic ThresholdSet (`calibrate_thresholds`) on `reference_activations()` of ``layer``;
    named "calibrated", or "calibrated-conv2" for another layer."""
    from interp.encoding.tuning import calibrated
    from interp.target.activations import blank_response

    name = "calibrated" if layer == DEFAULT_LAYER else f"calibrated-{layer}"
    return calibrated(reference_activations(layer=layer), blank_response(target_model(), layer), name=name)


@st.cache_resource(show_spinner="Optimising one input per filter…")
def dream_images(objective: str = "mean") -> np.ndarray:
    """Activation-maximisation images float [8, 28, 28] of the target's conv1 filters (`interp.target.filters.dream`)."""
    from interp.target.filters import DreamConfig, dream

    images = dream(target_model(), DreamConfig(objective=objective))
    images.setflags(write=False)
    return images


@st.cache_resource(show_spinner="Measuring what each filter responds to…")
def filter_profiles(n_per_shape: int = 50, n_mnist: int = 1000) -> list:
    """`interp.target.profiles.describe_filters` on the target: `n_per_shape` one-shape images per type,
    12 line angles, top patches over the first `n_mnist` MNIST test digits."""
    from interp.target.profiles import ProfileConfig, describe_filters

    profiles = describe_filters(target_model(), ProfileConfig(n_per_shape=n_per_shape), mnist().test.images[:n_mnist])
    for p in profiles:  # shared by every session: nobody may edit them in place
        for a in (p.shape_responses, p.tuning, *(q.pixels for q in p.patches)):
            a.setflags(write=False)
    return profiles


# --- Chat and Labeling pages: interpreters ----------------------------------------------------------

INTERPRETER_OVERRIDE_KEY = "interpreter_override"
"""Session key: an Interpreter used for every spec, or {spec: Interpreter}; replaces loading (tests, demos)."""


@st.cache_resource(show_spinner="Loading the interpreter…", max_entries=3)
def loaded_interpreter(spec: str):
    """`interp.interpreters.registry.load_interpreter` once per spec (an adapter folder or ``base:PRESET``)."""
    from interp.interpreters.registry import load_interpreter

    return load_interpreter(spec, paths().models_dir)


def interpreter(spec: str):
    """The interpreter for ``spec``: the session's override if it has one, else the cached loaded model.

    Raises what loading raises (model not fetched, broken adapter): pages show `load_error_message`.
    """
    override = st.session_state.get(INTERPRETER_OVERRIDE_KEY)
    if isinstance(override, dict):
        if spec in override:
            return override[spec]
    elif override is not None:
        return override
    return loaded_interpreter(spec)


def interpreter_choices():
    """`interp.interpreters.chat.list_interpreters` (shipped first) with the session's override applied."""
    from interp.interpreters.chat import list_interpreters, with_overrides

    return with_overrides(list_interpreters(paths()), st.session_state.get(INTERPRETER_OVERRIDE_KEY))


@st.cache_resource(show_spinner="Loading the activation probe…")
def probe():
    """The shipped conv1 activation probe (assets/probes/), the reference Chat checks count answers against (any
    interpreter's: it reads the image itself, with its own layer); None if none."""
    from interp.interpreters.probe import ProbeInterpreter, shipped_probe

    found = shipped_probe(paths().probes_dir)
    return ProbeInterpreter.load(found) if found else None


def active_jobs(kind: str) -> bool:
    """Whether a job of ``kind`` is queued or running (cheap: the store's records, no backend poll)."""
    from interp.jobs.spec import TERMINAL

    return any(r["spec"].get("kind") == kind and r["status"] not in TERMINAL
               for r in store().list_jobs().to_dict("records"))


def job_progress(kind: str, watch_key: str, starting: str = "starting") -> list:
    """A progress bar per active job of ``kind`` (its log's last bar); returns the jobs listed in
    ``st.session_state[watch_key]`` (ids this page started) that have ended, and forgets them."""
    from interp.jobs import control as jobs
    from interp.jobs.spec import TERMINAL

    views = [v for v in jobs.list_views(paths(), store()) if v.spec.kind == kind]
    for v in views:
        if v.status not in TERMINAL:
            label, done, total = v.progress or (starting, 0, 1)
            st.progress(done / max(total, 1),
                        text=f"`{v.spec.name}` · {label}" + (f" {done}/{total}" if v.progress else ""))
    watched = st.session_state.get(watch_key, set())
    ended = [v for v in views if v.id in watched and v.status in TERMINAL]
    for v in ended:
        watched.discard(v.id)
    return ended
