"""Pre-training on Lightning (see ``pretrain``): the run's settings, the deterministic sample
stream, the Lightning task, the training data of each kind of channel space, callbacks.

    from splitbrain.train import TrainConfig, pretrain
    weights = pretrain(TrainConfig(data="folder:~/photos", preset="small", epochs=10))
"""

from .config import TrainConfig
from .pretrain import pretrain

__all__ = ["TrainConfig", "pretrain"]
