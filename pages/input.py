"""Draw & upload: turn a drawing, a file or an MNIST test digit into the current 28×28 input."""

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from interp.data.images import FORMAT_NAMES, UPLOAD_EXTENSIONS, ImageError, prepare_drawing, prepare_upload
from interp.pipeline import analyze_image, next_example
from pages.common import active_threshold_set, current_image, mnist, set_current_image, target_model
from pages.figures import probability_bar, upscale

SOURCES = ("Draw", "Upload", "MNIST", "Shapes")
MAX_UPLOAD_MB = int(st.get_option("server.maxUploadSize"))  # .streamlit/config.toml

st.title("Draw & upload")
st.caption("Give the target CNN an image. Drawings and uploads become MNIST-style inputs the way MNIST was "
           "made: grey-scale, white on black (light backgrounds are inverted), the stroke's bounding box fitted "
           "into 20×20 and centred by its centre of mass in 28×28.")

left, right = st.columns([1, 1.25], gap="large")
original = image = None
label = ""
with left:
    source = st.segmented_control("Source", SOURCES, default=SOURCES[0], required=True, key="input_source",
                                  label_visibility="collapsed")
    if source == SOURCES[0]:
        st.caption("Draw a digit or a few shapes with the mouse or a finger. Hover over the canvas for its "
                   "toolbar (top right): undo, redo, and the bin to clear it.")
        canvas = st_canvas(stroke_width=18, stroke_color="#FFFFFF", background_color="#000000",
                           width=280, height=280, drawing_mode="freedraw", return_image_data=True,
                           key="draw_canvas")
        try:
            image = prepare_drawing(canvas.image_data)
            original, label = canvas.image_data, "drawing"
        except ImageError as exc:
            st.info(str(exc))
    elif source == SOURCES[1]:
        upload = st.file_uploader(f"An image of any size and colour, at most {MAX_UPLOAD_MB} MB",
                                  type=list(UPLOAD_EXTENSIONS), key="upload",
                                  help=f"{FORMAT_NAMES} (first frame). Dark ink on a light background is "
                                       "inverted.")
        st.caption(f"A file over {MAX_UPLOAD_MB} MB is refused by the uploader (the reason shows beside "
                   "its name) and never reaches the app; the file shown before it stays in use.")
        if upload is None:
            st.info(f"Upload a {FORMAT_NAMES} file of at most {MAX_UPLOAD_MB} MB.")
        else:
            # Every message names the file it is about and is drawn anew for the file now in the uploader.
            try:
                original, image = prepare_upload(upload.getvalue(), max_bytes=MAX_UPLOAD_MB * 2**20)
                label = f"upload {upload.name}"
            except ImageError as exc:
                st.error(f"**{upload.name}**: {exc}")
    elif source == SOURCES[2]:
        test = mnist().test

        def jump_to_digit() -> None:
            st.session_state.mnist_index = next_example(test.labels, st.session_state.mnist_digit,
                                                        st.session_state.get("mnist_index", -1))

        index = st.number_input(f"Test image index (0–{len(test) - 1})", 0, len(test) - 1, 0, key="mnist_index")
        c1, c2 = st.columns([1, 1], vertical_alignment="bottom")
        c1.selectbox("Digit", range(10), key="mnist_digit")
        c2.button("Next example of this digit", on_click=jump_to_digit, key="mnist_next")
        image, original = test.images[index], upscale(test.images[index])
        label = f"MNIST test #{index} (label {int(test.labels[index])})"
    else:
        st.markdown("Synthetic images of the shape set S (§3.1), with controls for the shape types, counts and "
                    "seed, are made on the Shapes page; press *Use as current image* there.")
        st.page_link("pages/shapes.py", label="Open the Shapes page", icon="🔷")

with right:
    if image is None:
        current, current_label = current_image()
        st.caption("The processed 28×28 input and the target's prediction appear here. Until you use a new "
                   "image, every page works on the current one:")
        st.image(upscale(current, 140), caption=f"Current image: {current_label}")
    else:
        result = analyze_image(target_model(), image, active_threshold_set())
        c1, c2 = st.columns(2)
        # The prepared 8-bit grey image (white on black), never the file as sent: a 16-bit or CMYK
        # file cannot be shown as it is.
        c1.image(original, caption="Grey, white on black" if source == SOURCES[1] else "Original", width=196)
        c2.image(upscale(image), caption="Processed 28×28 (MNIST-style)", width=196)
        st.markdown(f"#### Prediction: **{result.prediction}** · {result.probabilities[result.prediction]:.1%}")
        st.plotly_chart(probability_bar(result.probabilities, height=190), key="input_probs")
        current, current_label = current_image()
        if (current == image).all():
            st.success(f"This is the current image ({current_label}).")
            st.page_link("pages/activations.py", label="See its activations and encoding", icon="🔥")
        else:
            st.button("Use this image", type="primary", on_click=set_current_image, args=(image, label),
                      key="use_image", help="Make it the current image of every page (Activations, Binning, …).")
        with st.expander(f"Encoding c(a): paper, {result.n_chars:,} characters"):
            st.code(result.encoding, language=None, wrap_lines=True)
