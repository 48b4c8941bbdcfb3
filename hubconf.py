"""torch.hub entry points: every variant of the paper, built at random initialisation or
loaded from a weights file, a model folder or a Hugging Face Hub name ``owner/name``, as
``sb.load`` takes them (safetensors and JSON: loading runs no code).

    model = torch.hub.load("path/to/splitbrain", "splitbrain", source="local", preset="small")
    model = torch.hub.load("path/to/splitbrain", "splitbrain", source="local",
                           weights="runs/demo/weights.safetensors")

Entry points are the variant names with ``_`` for ``-`` (``splitbrain``, ``l2ab_cl``, ...).
Models come in eval mode, as from ``sb.build`` and ``sb.load``.
"""

import splitbrain as sb

dependencies = ["torch", "safetensors", "numpy", "PIL", "huggingface_hub"]


def _entry(variant: str):
    def entry(preset=None, width=1.0, weights=None, split="lab"):
        if weights is None:
            return sb.build(variant, preset=preset or "paper", split=split, width=width)
        model = sb.load(weights, preset=preset)
        if model.config.variant != variant:
            raise ValueError(
                f"{weights} holds a {model.config.variant} model, not {variant}: load it with "
                f"the {model.config.variant.replace('-', '_')} entry point"
            )
        return model

    entry.__name__ = variant.replace("-", "_")
    entry.__doc__ = (
        f"The {variant} variant: ``preset`` (paper, transfer, small; default paper, or the "
        "file's), ``width`` and ``split`` when building, or ``weights``: a file, model folder "
        "or hub name (whose configuration then decides width and split)."
    )
    return entry


for _variant in sb.VARIANTS:
    globals()[_variant.replace("-", "_")] = _entry(_variant)
