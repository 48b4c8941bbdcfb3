"""A deterministic, resumable stream of training samples.

Which image a step sees, and how it is cropped and mirrored, is a pure function of the seed
and the step: the stream is a concatenation of per-epoch permutations, and every sample carries
its own augmentation seed. A run resumed at step s therefore continues with exactly the samples
an uninterrupted run would have seen, whatever the number of loader workers, and data parallel
ranks split each global batch between them. ``StreamLoader`` hands Lightning the loader of
the steps that remain once a checkpoint is restored.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .signals import end_loader_workers_at_exit, ignore_stop_signals_and_seed

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads consecutive seeds apart


def sample_seed(seed: int, position: int) -> int:
    """Augmentation seed of the sample at ``position`` of the stream."""
    return (seed * _MIX + position * 0xBF58476D1CE4E5B9) % (2**63)


class StepSampler(Sampler[tuple[int, int]]):
    """Yields (dataset index, augmentation seed) for this rank, steps ``start``..``total``-1.

    Its length is that of the whole run, not of what remains, because the trainer counts the
    batches of a resumed run from where it stopped.
    """

    def __init__(
        self,
        num_items: int,
        global_batch: int,
        total_steps: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ) -> None:
        if global_batch % world_size:
            raise ValueError(f"batch size {global_batch} is not divisible by {world_size} devices")
        if num_items < 1:
            raise ValueError("the dataset is empty")
        self.num_items = num_items
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.total_steps = total_steps
        self.seed = seed
        self.rank = rank
        self.start_step = start_step
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.long)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._order = torch.randperm(self.num_items, generator=generator)
            self._epoch = epoch
        return self._order

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for step in range(self.start_step, self.total_steps):
            first = step * self.global_batch + self.rank * self.local_batch
            for position in range(first, first + self.local_batch):
                epoch, offset = divmod(position, self.num_items)
                index = int(self._permutation(epoch)[offset])
                yield index, sample_seed(self.seed, position)

    def __len__(self) -> int:
        return self.total_steps * self.local_batch


class SeededDataset(Dataset):
    """Wraps a dataset so that item (index, seed) is drawn with torch's RNG seeded by seed,
    without disturbing the caller's RNG."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]

    def __len__(self) -> int:
        return len(self.dataset)


def make_loader(
    dataset: Dataset,
    global_batch: int,
    total_steps: int,
    seed: int = 0,
    workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    start_step: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """The loader of this rank's share of steps ``start_step``..``total_steps``-1; its worker
    processes ignore stop signals and are ended at exit if an error left them running."""
    if workers:
        end_loader_workers_at_exit()
    sampler = StepSampler(
        len(dataset), global_batch, total_steps, seed, rank, world_size, start_step
    )
    return DataLoader(
        SeededDataset(dataset),
        batch_size=sampler.local_batch,
        sampler=sampler,
        num_workers=workers,
        collate_fn=getattr(dataset, "collate", None),
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
        worker_init_fn=ignore_stop_signals_and_seed if workers else None,
    )


class StreamLoader(L.LightningDataModule):
    """Builds the loader after a checkpoint is restored, so the stream starts at its step."""

    def __init__(
        self, dataset: Dataset, global_batch: int, total_steps: int, seed: int, workers: int
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.global_batch = global_batch
        self.total_steps = total_steps
        self.seed = seed
        self.workers = workers

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        return make_loader(
            self.dataset,
            self.global_batch,
            self.total_steps,
            self.seed,
            self.workers,
            trainer.global_rank,
            trainer.world_size,
            trainer.global_step,
            pin_memory=trainer.accelerator.__class__.__name__ == "CUDAAccelerator",
        )
