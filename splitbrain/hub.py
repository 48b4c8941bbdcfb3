"""Model folders in the Hugging Face convention, and hub names.

A model folder holds ``config.json`` (the weights file's metadata, readable on the hub's page),
``model.safetensors`` (the weights, with that metadata, so the file alone still loads) and a
model card ``README.md`` (YAML metadata the hub indexes, then what the model is and how to use
it). ``owner/name`` is fetched with ``huggingface_hub``, which keeps its cache and honours
``HF_HUB_OFFLINE`` and the user's token. Only JSON and safetensors are read: loading a
stranger's model runs none of their code.

``weights.py`` imports this module only for folders and names, so that ``import splitbrain``
and loading a plain weights file never pay for importing ``huggingface_hub``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from .atomic import atomic_write
from .colorize import colorizer, untrained_colours
from .errors import WeightsFileError
from .jsontext import json_text
from .models import SplitBrain, count_parameters

CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
PAPER = "1611.09842"
TAGS = (
    "self-supervised", "colorization", "split-brain-autoencoder", "pytorch", "safetensors",
    f"arxiv:{PAPER}",
)  # fmt: skip
#: Data formats that name a public dataset (``FORMAT:PATH``), listed in the card's ``datasets``;
#: a folder of one's own images names none.
PUBLIC_DATA = ("cifar10", "cifar100", "stl10", "voc", "camvid", "coco", "nyu")
#: A network with a head (its configuration's field): the hub's task, and the command that
#: runs it on photographs (None: the features are what it gives).
HEADS = (
    ("segmenter", "image-segmentation", "segment --predict --weights {} photos/ --out masks/"),
    ("detector", "object-detection", "detect --predict --weights {} photos/ --out found/"),
    ("classifier", "image-classification", None),
)
#: What the ``scored on`` of a segmenter's or detector's provenance says: FORMAT:PATH SPLIT, N ...
SCORED_ON = re.compile(r"^(\w+):.* (\w+), [\d,]+ \w+$")
#: Files that are weights by their name, never hub names.
FILE_SUFFIXES = (".safetensors", ".ckpt")


def is_name(text: str) -> bool:
    """Whether ``text`` reads as a hub name, ``owner/name``, rather than a local path."""
    if text.count("/") != 1 or text.startswith((".", "~")) or text.endswith(FILE_SUFFIXES):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def download(name: str) -> Path:
    """The folder of hub model ``name`` in the Hugging Face cache, fetched when it is not
    there or not current (``HF_HUB_OFFLINE=1``: the cache alone, without asking the hub)."""
    wanted = CONFIG
    try:
        for wanted in (CONFIG, WEIGHTS):
            path = Path(hf_hub_download(name, wanted))
    except LocalEntryNotFoundError as error:  # before its base class EntryNotFoundError
        why = (
            "HF_HUB_OFFLINE is set: fetch it once online"
            if constants.HF_HUB_OFFLINE
            else f"the hub could not be reached: {_first_line(error)}"
        )
        raise WeightsFileError(
            f"{name}: no such file or folder here, and not in the Hugging Face cache ({why})"
        ) from None
    except GatedRepoError:  # before its base class RepositoryNotFoundError
        raise WeightsFileError(
            f"{name}: a gated model; accept its conditions on the hub, then log in with "
            "`hf auth login`"
        ) from None
    except RepositoryNotFoundError:
        raise WeightsFileError(
            f"{name}: no such file or folder here, nor a model on the Hugging Face Hub (a "
            "private one needs `hf auth login`)"
        ) from None
    except EntryNotFoundError:
        raise WeightsFileError(
            f"{name}: its hub repository has no {wanted}: not a splitbrain model folder"
        ) from None
    except HfHubHTTPError as error:
        raise WeightsFileError(f"{name}: the Hugging Face Hub said {_first_line(error)}") from None
    return path.parent


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def read_record(folder: Path, shown: str) -> dict[str, Any] | None:
    """The folder's ``config.json`` (None when it has none), for checking against its weights."""
    path = folder / CONFIG
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as error:
        raise WeightsFileError(f"{shown}: unreadable {CONFIG} ({error})") from None


def describe(folder: Path, model: SplitBrain, record: dict[str, Any], name: str) -> None:
    """Write ``config.json`` (``record``: the weights file's metadata, parsed) and the model
    card beside the folder's weights; ``name`` is the hub name the card's examples load."""
    text = json_text(record, indent=2) + "\n"
    atomic_write(folder / CONFIG, lambda tmp: Path(tmp).write_text(text))
    card = str(model_card(model, record["provenance"], name))
    atomic_write(folder / CARD, lambda tmp: Path(tmp).write_text(card))


def model_card(model: SplitBrain, provenance: dict[str, Any], name: str) -> ModelCard:
    """The card of ``model``: the hub's metadata (library, licence, tags, the paper, datasets,
    scores as ``model-index``), what the model is and was trained on, and how to use it."""
    pipeline, command = next(
        ((tag, command) for head, tag, command in HEADS if getattr(model.config, head)),
        ("image-feature-extraction", None),
    )
    data = ModelCardData(
        model_name=name.rpartition("/")[2],
        library_name="splitbrain",
        license="mit",
        tags=list(TAGS),
        datasets=_datasets(provenance) or None,
        pipeline_tag=pipeline,
        eval_results=_eval_results(provenance, pipeline) or None,
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(model, provenance, name, command)}")


def _datasets(provenance: dict[str, Any]) -> list[str]:
    """The public datasets the record names as data, its trunk's included, in order."""
    found: list[str] = []
    for key, value in provenance.items():
        if isinstance(value, dict):
            found += _datasets(value)
        elif key in ("data", "scored on") and isinstance(value, str):
            found.append(value.partition(":")[0])
    return [d for d in dict.fromkeys(found) if d in PUBLIC_DATA]


def _eval_results(provenance: dict[str, Any], pipeline: str) -> list[EvalResult]:
    """The recorded scores (undefined ones left out), on the data they were measured on."""
    scores, scored_on = provenance.get("scores") or {}, str(provenance.get("scored on", ""))
    match = SCORED_ON.match(scored_on)
    dataset, split = match.groups() if match else (scored_on or "unknown", None)
    return [
        EvalResult(
            task_type=pipeline,
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split=split,
            metric_type=re.sub(r"\W+", "_", metric.lower()),
            metric_name=metric,
            metric_value=value,
        )
        for metric, value in scores.items()
        if isinstance(value, int | float)
    ]


def _body(model: SplitBrain, provenance: dict[str, Any], name: str, command: str | None) -> str:
    config, (resize, crop) = model.config, model.geometry()
    halves = ", ".join(e.spec.half.name for e in model.encoders)
    lines = [
        f"# {name.rpartition('/')[2]}",
        "",
        "A Split-Brain Autoencoder (Zhang, Isola & Efros, *Split-Brain Autoencoders: "
        "Unsupervised Learning by Cross-Channel Prediction*, CVPR 2017, "
        f"[arXiv:{PAPER}](https://arxiv.org/abs/{PAPER})), for the `splitbrain` library.",
        "",
        f"- **network**: the `{config.variant}` variant on the `{config.split.name}` split "
        f"({halves}), `{config.preset}` preset, {count_parameters(model):,} parameters",
        f"- **input**: resized to {resize} px and centre-cropped to {crop} px",
    ]
    if colorizer(model) is not None:
        decode, temperature = model.decoding()
        at = f" at T = {temperature:g}" if decode == "annealed" else ""
        lines.append(f"- **colour decoding**: {decode}{at}")
    if config.segmenter:
        head, layers, classes = config.segmenter
        lines.append(f"- **segmenter**: {head} on {', '.join(layers)}; {', '.join(classes)}")
    if config.detector:
        lines.append(f"- **detector**: {', '.join(config.detector[0])}")
    if config.classifier:
        layer, classes = config.classifier
        lines.append(f"- **classifier**: on {layer}; {len(classes)} classes")
    lines += [f"- **{key}**: {value}" for key, value in provenance.items() if _scalar(value)]
    trunk = provenance.get("trunk") or {}
    if "data" in trunk:
        lines.append(f"- **trunk pre-trained on**: {trunk['data']}")
    lines += ["", f"The full record is in `{CONFIG}`; `splitbrain info {name}` prints it."]
    if provenance.get("scores"):
        lines += ["", "## Scores", "", f"On {provenance.get('scored on', 'its test data')}:", ""]
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_number(v)} |" for k, v in provenance["scores"].items()]
    lines += _usage(model, name, command)
    return "\n".join(lines) + "\n"


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and value != ""


def _number(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else "-" if value is None else str(value)


def _usage(model: SplitBrain, name: str, command: str | None) -> list[str]:
    """How to use it: install, load by name, and the command its kind of network runs."""
    lines = [
        "", "## Use", "", "```bash", "pip install splitbrain", "```", "", "```python",
        "import splitbrain as sb", "",
        f'model = sb.load("{name}")  # fetched once into the Hugging Face cache',
        'features = model.features(rgb, layers=["conv5"])  # rgb: (N, 3, H, W) in [0, 1]',
        "```",
    ]  # fmt: skip
    if command is None and colorizer(model) is not None and untrained_colours(model) is None:
        command = "colorize --weights {} photos/ --out coloured/"
    elif command is None:
        command = "extract --weights {} --data folder:photos --out features.npz"
    return [*lines, "", "```bash", f"splitbrain {command.format(name)}", "```"]
