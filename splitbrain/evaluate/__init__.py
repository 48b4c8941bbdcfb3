"""Evaluation of learned representations (SPEC section 5): linear probes on frozen features,
kNN classification, fine-tuning, and the untrained baselines, on any labelled image data.

    from splitbrain.evaluate import LabelledData, ProbeConfig, linear_probe, open_model
    data = LabelledData.open("folder:/data/cifar10")            # train split + test split
    name, model = open_model("runs/sb/weights.safetensors", data)  # or "gaussian:small"
    result = linear_probe(model, data, ProbeConfig(cache_features=True), name)
    print(result.top1)                                           # {"conv1": 41.2, ...}

See docs/EVALUATION.md for the protocols, the command line and measured costs.
"""

from ..extract import PAPER_GRID, activation_shapes, probe_grid, probe_grids
from .baselines import batchnorm_from, build_baseline, open_model, parse_baseline
from .data import LabelledData
from .engine import Comparison, Task, compare
from .features import DEFAULT_LAYERS, FrozenTrunk
from .finetune import FinetuneConfig, FinetuneNet, FinetuneResult, finetune
from .knn import KNNConfig, KNNResult, knn_evaluate, knn_scores, pooled_features
from .metrics import average_precision, mean_average_precision, topk_correct
from .probe import ProbeConfig, ProbeHead, ProbeResult, linear_probe
from .report import Table, write_report
from .tasks import FinetuneTask, KNNTask, ProbeTask

__all__ = [
    "Comparison",
    "FinetuneTask",
    "KNNConfig",
    "KNNTask",
    "ProbeTask",
    "Task",
    "compare",
    "DEFAULT_LAYERS",
    "PAPER_GRID",
    "FinetuneConfig",
    "FinetuneNet",
    "FinetuneResult",
    "FrozenTrunk",
    "KNNResult",
    "LabelledData",
    "ProbeConfig",
    "ProbeHead",
    "ProbeResult",
    "Table",
    "activation_shapes",
    "average_precision",
    "batchnorm_from",
    "build_baseline",
    "finetune",
    "knn_evaluate",
    "knn_scores",
    "linear_probe",
    "mean_average_precision",
    "open_model",
    "parse_baseline",
    "pooled_features",
    "probe_grid",
    "probe_grids",
    "topk_correct",
    "write_report",
]
