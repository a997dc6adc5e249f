"""``tconvseg-demo ckpt_path=...``: a page to try a trained model, served on this machine.

Drop an image on the page: it shows the image blended with the class colours, the legend (class names
and colours) and each class's share of the pixels; a file that is not an image, or one above
``max_image_pixels``, is refused with a message on the page. What the page shows is computed by
`tconvseg.inference.demo_view.view` (no web library); this module puts it on a Gradio page (the optional
``demo`` extra) and serves it on ``host:port`` (127.0.0.1 by default: this machine only), with Gradio's
analytics off, no share link, and nothing fetched from the internet.

Called the old way (no ``key=value`` argument, or ``--encoders`` / ``--sizes`` / ``--topology``),
``tconvseg-demo`` still prints the shapes table of `tconvseg.tasks.shapes`, with a FutureWarning.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from tconvseg.entry import run_hydra
from tconvseg.inference.demo_view import CSS, PROMPT, DemoModel, View, message_html, shares_html, view
from tconvseg.inference.restore import image_options, normalisation, restore, set_up_inference

log = logging.getLogger(__name__)

#: The flags of the shapes table, which ``tconvseg-demo`` printed until 2026-12.
LEGACY_FLAGS = ("--encoders", "--sizes", "--topology")


def demo_model(cfg: DictConfig) -> DemoModel:
    """The checkpoint ``cfg.ckpt_path`` restored for the page, with the page's options checked first.

    Raises:
        ValueError: a bad option (named, with what was expected) or checkpoint. FileNotFoundError: no such checkpoint.
    """
    _check_options(cfg)
    options = set_up_inference(cfg)
    if options.adapt_bn:
        raise ValueError("adapt_bn=true is not available on the demo page (it adapts to a set of images, the page sees one); expected adapt_bn=false")
    restored = restore(cfg, options)
    mean, std = normalisation(cfg)
    scale, max_pixels = image_options(cfg)
    device = str(cfg.get("device", "cpu"))
    return DemoModel(
        system=restored.system.to(device), info=restored.info, mean=mean, std=std, scale=scale, max_pixels=max_pixels,
        alpha=cfg.get("overlay_alpha", 0.5), device=device,
    )


def _check_options(cfg: DictConfig) -> None:
    port = cfg.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port={port!r} is invalid; expected a TCP port number 1..65535 (default 7860)")
    if not isinstance(cfg.get("host"), str) or not cfg.host:
        raise ValueError(f"host={cfg.get('host')!r} is invalid; expected an address to serve on, e.g. 127.0.0.1 (this machine only)")
    image_options(cfg)
    alpha = cfg.get("overlay_alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"overlay_alpha={alpha!r} is invalid; expected a weight 0..1 of the class colours in the overlay")
    device = str(cfg.get("device"))
    if device != "cpu" and not (device.startswith("cuda") and torch.cuda.is_available()):
        raise ValueError(f"device={device!r} is invalid here; expected cpu, or cuda / cuda:N on a machine with a CUDA GPU "
                         f"(this one has {'one' if torch.cuda.is_available() else 'none'})")


def _gradio() -> Any:
    """Gradio, imported with its analytics (and version check) off; an ImportError naming the extra when missing."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # gradio imports huggingface_hub; the page needs nothing from a hub
    try:
        import gradio as gr
    except ImportError as err:
        raise ImportError(
            f"tconvseg-demo serves its page with Gradio, which is not installed ({err}); install it with pip install 'tconvseg[demo]'"
        ) from err
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up probes of the page, one line each
    return gr


def build_page(model: DemoModel, title: str = "tconvseg") -> Any:
    """The Gradio page (a ``gr.Blocks``, not launched): a file drop, the message line, the legend with the shares, the overlay.

    Element ids (for the browser test and custom CSS): ``tcs-upload``, ``tcs-message``, ``tcs-shares``, ``tcs-overlay``.
    """
    gr = _gradio()

    def respond(file: str | None) -> tuple[Any, str, str]:
        try:
            result = view(file, model)
        except Exception as exc:  # the page must show what went wrong with one image, and keep serving
            log.exception("segmenting %s failed", file)
            result = View(message=f"segmenting {Path(file).name if file else 'the image'} failed: {type(exc).__name__}: {exc}")
        return result.overlay, shares_html(model.info, result.shares), message_html(result)

    names = ", ".join(model.info.class_names)
    with gr.Blocks(title=f"{title} demo", analytics_enabled=False) as page:
        gr.Markdown(f"### {title}\n{model.info.num_classes} classes ({model.info.name}): {names}. {PROMPT}")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="image", type="filepath", elem_id="tcs-upload")
                message = gr.HTML(message_html(View(message=PROMPT)), elem_id="tcs-message", js_on_load=None)
                table = gr.HTML(shares_html(model.info), elem_id="tcs-shares", js_on_load=None)
            with gr.Column(scale=2):
                picture = gr.Image(label="overlay", type="numpy", format="png", interactive=False, elem_id="tcs-overlay",
                                   buttons=["download", "fullscreen"])  # no "share" (to Hugging Face): the page stays local
        upload.change(respond, inputs=upload, outputs=[picture, table, message])
    return page


def serve(cfg: DictConfig, block: bool = True) -> Any:
    """Restore the checkpoint, build the page and serve it on ``cfg.host:cfg.port``; returns the launched ``gr.Blocks``.

    ``block``: wait until interrupted (Ctrl+C); otherwise return at once with the server running in a thread
    (``page.close()`` stops it).

    Raises:
        ValueError: a bad option or checkpoint. OSError: the port is taken.
    """
    model = demo_model(cfg)
    gr = _gradio()
    page = build_page(model, title=f"tconvseg — {Path(str(cfg.ckpt_path)).name}")
    host, port = str(cfg.host), int(cfg.port)
    if not _is_loopback(host):
        log.warning("host=%s: the page is reachable from other machines, with no login; host=127.0.0.1 keeps it on this one", host)
    try:
        page.launch(
            server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=True, quiet=True,
            max_file_size=cfg.get("max_file_size"), theme=gr.themes.Default(), css=CSS,
        )
    except OSError as err:
        raise OSError(f"cannot serve on {host}:{port} ({err}); expected a free port: choose another with port=N") from err
    print(f"tconvseg-demo: serving {cfg.ckpt_path} on http://{host}:{port} (Ctrl+C stops it)", flush=True)
    if block:
        try:
            page.block_thread()
        finally:
            page.close()
    return page


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _task(cfg: DictConfig) -> None:
    serve(cfg)


def is_legacy_call(argv: list[str]) -> bool:
    """Whether ``argv`` is an old ``tconvseg-demo`` call (the shapes table): no argument at all, or one of `LEGACY_FLAGS`."""
    return not argv or any(arg.split("=", 1)[0] in LEGACY_FLAGS for arg in argv)


def main() -> None:
    """``tconvseg-demo ckpt_path=PATH|last [port=7860] ...`` / ``python scripts/demo.py ...``: serve the page."""
    argv = sys.argv[1:]
    if is_legacy_call(argv):
        from tconvseg.tasks.shapes import main as shapes

        warnings.warn(
            "tconvseg-demo without key=value arguments (or with --encoders / --sizes / --topology) prints the shapes table, "
            "which is now tconvseg-shapes (python scripts/shapes.py); this fallback will be removed. "
            "tconvseg-demo ckpt_path=PATH serves a page to try a trained model.",
            FutureWarning, stacklevel=1,
        )
        shapes(argv, prog="tconvseg-shapes")
        return
    run_hydra(_task, "demo")
