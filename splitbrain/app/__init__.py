"""The web page that colours, segments and detects photographs (``splitbrain app``): what it
takes (``uploads``), what it does to each upload (``photos``, which imports the segmentation and
detection packages) and the Gradio page around it (``page``, which alone needs gradio, the
``app`` extra). Only ``uploads`` is imported here, so that the command line stays quick."""

from .uploads import MAX_MEGAPIXELS, read_upload

__all__ = ["MAX_MEGAPIXELS", "read_upload"]
