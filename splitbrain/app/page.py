"""The web page of ``splitbrain app`` (Gradio): photographs dropped in come back coloured at
their full size, with the PNGs to download, and segmented or with their objects boxed when
those networks are given.

The page runs offline: no analytics or version check (``analytics_enabled=False``), no share
link, no run history (whose page offers to save runs on the Hugging Face Hub), no server-side
rendering process, and the fonts Gradio ships rather than web fonts; it binds to 127.0.0.1
unless told otherwise. One batch of photographs is processed at a time and other visitors wait
in a queue. Gradio is imported only when a page is built, so the package runs without it."""

from __future__ import annotations

import html
import tempfile
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from .photos import Networks, legend, process
from .uploads import MAX_MEGAPIXELS

if TYPE_CHECKING:
    import gradio

#: Requests waiting at most; a visitor past them is told the queue is full.
QUEUE = 16
#: The largest upload Gradio accepts: a 50-megapixel PNG fits.
MAX_UPLOAD = "200mb"
#: Pixels of height of each gallery of results.
HEIGHT = 360


def require_gradio() -> ModuleType:
    """The gradio module, or an ImportError that says how to install it."""
    try:
        import gradio
    except ImportError as error:
        raise ImportError(
            f'the page needs gradio ({error}): pip install "splitbrain[app]"'
        ) from None
    return gradio


def legend_html(networks: Networks) -> str:
    """The segmenter's class colours as swatches with their names."""
    swatches = "".join(
        f'<span style="margin-right:1em;white-space:nowrap"><span style="display:inline-block;'
        f'width:1em;height:1em;vertical-align:middle;background:rgb{colour}"></span> '
        f"{html.escape(name)}</span>"
        for name, colour in legend(networks.segmenter)
    )
    return f'<div id="legend">{swatches}</div>'


def build_page(networks: Networks, max_megapixels: float = MAX_MEGAPIXELS) -> gradio.Blocks:
    """The page, not yet served. Coloured files go to a temporary folder that lives as long as
    the page."""
    gr = require_gradio()
    outputs = tempfile.TemporaryDirectory(prefix="splitbrain-app-")

    def run(uploads: list[str] | None):
        if not uploads:
            raise gr.Error("Drop one or more photographs first.")
        pictures = process(networks, uploads, Path(tempfile.mkdtemp(dir=outputs.name)),
                           max_megapixels)  # fmt: skip
        for line in pictures.problems:
            gr.Warning(line)
        if not pictures.coloured:
            raise gr.Error("Nothing to colour: " + "; ".join(pictures.problems))
        coloured = [(str(path), path.name) for path in pictures.coloured]
        shown = [coloured, [str(path) for path in pictures.coloured]]
        if networks.segmenter is not None:
            shown.append(pictures.segmented)
        if networks.detector is not None:
            shown.append(pictures.detected)
        notes = "".join(f"- skipped {line}\n" for line in pictures.problems)
        return [*shown, notes]

    with gr.Blocks(title="splitbrain", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown(
            "# splitbrain\nDrop photographs, black-and-white or not: each comes back coloured at "
            "its full size from its lightness alone"
            + (", segmented" if networks.segmenter is not None else "")
            + (", with the objects found boxed" if networks.detector is not None else "")
            + f". At most {max_megapixels:g} megapixels a photograph."
        )
        with gr.Row():
            with gr.Column():
                photos = gr.File(label="Photographs", file_count="multiple",
                                 file_types=["image"], elem_id="photos")  # fmt: skip
                button = gr.Button("Colour", variant="primary", elem_id="run")
                notes = gr.Markdown(elem_id="notes")
            with gr.Column():
                shown = [
                    gr.Gallery(label="Coloured", format="png", height=HEIGHT, elem_id="coloured"),
                    gr.File(
                        label="Coloured, full size (PNG)",
                        file_count="multiple",
                        elem_id="downloads",
                    ),
                ]
        with gr.Row():
            if networks.segmenter is not None:
                with gr.Column():
                    shown.append(gr.Gallery(label="Segmented: overlay and mask", format="png",
                                            height=HEIGHT, elem_id="segmented"))  # fmt: skip
                    gr.HTML(legend_html(networks))
            if networks.detector is not None:
                shown.append(gr.Gallery(label="Objects", format="png", height=HEIGHT,
                                        elem_id="detected"))  # fmt: skip
        button.click(run, photos, [*shown, notes])
    return page


def start(
    networks: Networks,
    host: str = "127.0.0.1",
    port: int | None = None,
    max_megapixels: float = MAX_MEGAPIXELS,
) -> gradio.Blocks:
    """Serve the page on ``host``:``port`` (None: the first free port from 7860) in a
    background thread; ``page.local_url`` is its address, ``page.close()`` stops it."""
    page = build_page(networks, max_megapixels)
    page.queue(max_size=QUEUE, default_concurrency_limit=1)
    page.launch(
        server_name=host, server_port=port, share=False, prevent_thread_lock=True, quiet=True,
        show_error=True, ssr_mode=False, pwa=False, mcp_server=False, enable_monitoring=False,
        run_history=False, max_file_size=MAX_UPLOAD,
    )  # fmt: skip
    return page
