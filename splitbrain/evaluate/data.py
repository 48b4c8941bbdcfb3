"""Labelled train/test data for the evaluations, from any image source.

Labels come from the source (class folders, CIFAR/STL labels, npz ``labels``); items without a
label (-1: loose files in a class-folder tree, STL's unlabeled part) are left out. The data of
an evaluation is independent of the pre-training data: any spec works with any weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..data import (
    BadImageLog,
    DatasetError,
    EvalTransform,
    ImageDataset,
    ImageSource,
    TrainTransform,
    scan_source,
)
from ..runs.signals import end_loader_workers_at_exit, ignore_stop_signals

log = logging.getLogger("splitbrain.evaluate")


def require_labels(source: ImageSource) -> None:
    """Raise a DatasetError naming ``source`` when it has no labelled item."""
    if source.labels is None or not (source.labels >= 0).any():
        raise DatasetError(
            f"{source.spec} (split {source.split}) has no labels; evaluation needs labelled "
            "images: class subfolders, CIFAR or STL-10 train/test, or an npz with 'labels'"
        )


class LabelledData:
    """A labelled train and test source, each scanned for bad files once, giving datasets for
    any transform. ``num_classes`` covers the labels of both splits. ``labelled=False`` admits
    sources without labels (multi-label fine-tuning brings its own label matrix)."""

    def __init__(
        self,
        train: ImageSource,
        test: ImageSource,
        max_bad_fraction: float = 0.01,
        progress: bool = True,
        labelled: bool = True,
        kind: str = "images",
    ) -> None:
        if labelled:
            require_labels(train)
            require_labels(test)
        self.train, self.test = train, test
        self.max_bad_fraction = max_bad_fraction
        self.progress = progress
        self.labelled = labelled
        self.kind = kind
        labels = [s.labels for s in (train, test) if s.labels is not None and len(s.labels)]
        top = max((int(x.max()) + 1 for x in labels), default=0)
        self.num_classes = max(top, len(train.classes or []))
        self._logs: dict[tuple[str, int], BadImageLog] = {}

    @classmethod
    def open(
        cls,
        data: str,
        test_data: str | None = None,
        download: bool = False,
        max_bad_fraction: float = 0.01,
        progress: bool = True,
        labelled: bool = True,
        max_items: int | None = None,
        kind: str = "images",
    ) -> LabelledData:
        """``data``'s train split and ``test_data``'s test split (default: ``data``'s), each
        cut to an evenly spread ``max_items`` when given. ``kind`` is the data a model's
        channel space reads (``ChannelSpace.data``): photographs, channel stacks (npz, TIFF)
        or RGB-D frames; the last two are one split per file."""
        from ..rgbd.sources import open_data  # the RGB-D readers (h5py) load when data opens

        train = open_data(data, kind, "train", download, max_items=max_items)
        test = open_data(test_data or data, kind, "test", download, max_items=max_items)
        opened = cls(train, test, max_bad_fraction, progress, labelled, kind)
        if test_data is None and (kind != "images" or train.format == "npz"):
            log.warning(
                "%s is one split: the test scores are on the training images; "
                "give test_data (--test-data on the command line) for a held-out set",
                data,
            )
        return opened

    def describe(self) -> str:
        return f"train: {self.train.describe()}\ntest:  {self.test.describe()}"

    def _scan(self, which: str, min_side: int) -> BadImageLog:
        source = self.train if which == "train" else self.test
        key = (which, min_side)
        if key not in self._logs:
            self._logs[key] = scan_source(
                source, self.max_bad_fraction, min_side, progress=self.progress
            )
        return self._logs[key]

    def dataset(self, which: str, transform: TrainTransform | EvalTransform) -> Dataset:
        """The ``train`` or ``test`` items that are usable (and labelled, if required)."""
        source = self.train if which == "train" else self.test
        if self.kind == "rgbd":  # HHA per frame, computed once per call
            from ..rgbd import RGBDDataset

            dataset = RGBDDataset(source, transform, progress=self.progress)
            items = np.arange(len(dataset))
        else:
            min_side = transform.crop // 2 if self.kind == "images" else 1
            log = self._scan(which, min_side)
            dataset = ImageDataset(source, transform, log=log, min_side=min_side)
            items = dataset.indices
        if not self.labelled:
            return dataset
        keep = np.flatnonzero(source.labels[items] >= 0)
        return dataset if len(keep) == len(dataset) else Subset(dataset, keep)


@dataclass
class ScoredData:
    """The training and scored items of a task that trains a head on its own data
    (segmentation, detection), scanned once: bad ones named, counted, left out. Sources of
    pairs give their photographs alone by ``photos()``, for the baselines' initialisation."""

    train: ImageSource
    test: ImageSource
    train_log: BadImageLog
    test_indices: np.ndarray

    @classmethod
    def scan(
        cls, train: ImageSource, test: ImageSource, max_bad_fraction: float, progress: bool
    ) -> ScoredData:
        if train.classes != test.classes:
            raise ValueError(
                f"{train.spec} has classes {', '.join(train.classes)}; {test.spec} has "
                f"{', '.join(test.classes)}: score on data with the same classes"
            )
        train_log = scan_source(train, max_bad_fraction, progress=progress)
        test_log = scan_source(test, max_bad_fraction, progress=progress)
        return cls(train, test, train_log, test_log.good_indices())

    def scored(self) -> str:
        """What the scores are measured on, for titles and provenance."""
        test = self.test
        return f"{test.format}:{test.path} {test.split}, {len(self.test_indices):,} images"

    def shown(self, count: int) -> list[int]:
        """Up to ``count`` scored items evenly spread, for pictures."""
        indices = self.test_indices
        picks = np.linspace(0, len(indices) - 1, min(count, len(indices))).round()
        return [int(indices[int(k)]) for k in picks]

    def photos(self) -> LabelledData:
        """The photographs alone, for the baselines' initialisation."""
        return LabelledData(self.train.photos(), self.test.photos(), progress=False, labelled=False)


def loader(
    dataset: Dataset,
    batch_size: int,
    workers: int = 0,
    shuffle: bool = False,
    seed: int = 0,
) -> DataLoader:
    """uint8 batches; shuffled with a generator of its own, so the order depends on ``seed``
    alone and several models of one call see the same batches. Workers leave stop signals to
    the main process, which stops in one line."""
    if workers:
        end_loader_workers_at_exit()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        num_workers=workers,
        collate_fn=ImageDataset.collate,
        persistent_workers=workers > 0 and shuffle,
        prefetch_factor=4 if workers else None,
        worker_init_fn=ignore_stop_signals if workers else None,
    )
