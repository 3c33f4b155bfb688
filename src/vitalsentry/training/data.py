"""Batches for the trainer: windows resident on the device, batches cut by index tensors.

The whole split lives in one (N, C, L) tensor (on the training device when it fits);
a sampler yields one index tensor per batch and the dataset gathers the batch with one
indexing op, so the hot loop has no per-window Python and no collation. The order of an
epoch depends only on (seed, epoch), which is what makes ``resume`` reproduce an
uninterrupted run exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import lightning.pytorch as pl
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from vitalsentry.data.prepared import PreparedData

DEVICE_SHARE = 0.5
"""Use at most this share of the free accelerator memory for resident windows."""

VAL_BATCH = 1024
"""Smallest validation batch: no gradients are kept, and the mean loss does not depend on it."""

VALIDATION_SHARE = 0.15
"""Share of the training patients carved out for validation when the data has no val split."""


def stream_seed(*parts: int) -> int:
    """Mix integers (seed, epoch, rank, purpose…) into one 63-bit torch seed."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class TrainValParts:
    """Training and validation windows chosen from prepared data.

    Attributes
    ----------
    train, val : PreparedData
        The two parts.
    note : str
        How the validation part was chosen (shown to the user and saved in the bundle).
    """

    train: PreparedData
    val: PreparedData
    note: str


def train_val_parts(data: PreparedData, seed: int) -> TrainValParts:
    """Split prepared data into training and validation windows.

    Split 1 (held-out patients) is the validation part when it has windows. Otherwise
    (a 70/30 dataset) :data:`VALIDATION_SHARE` of the training patients, drawn with
    ``seed``, become the validation part; with a single training patient or stream, the
    last :data:`VALIDATION_SHARE` of its windows in time (minus the windows overlapping
    them) do.

    Parameters
    ----------
    data : PreparedData
        All windows with their split codes.
    seed : int
        Seed of the patient draw.

    Returns
    -------
    TrainValParts
        The parts and a note saying which rule was used.
    """
    if (data.split == 1).any():
        val = data.split_part(1)
        note = f"held-out patients (split 1): {len(val)} windows of {np.unique(val.patient).size} patient(s)"
        return TrainValParts(data.split_part(0), val, note)
    train = data.split_part(0)
    patients = np.unique(train.patient)
    if patients.size >= 2:
        n_val = min(patients.size - 1, max(1, round(VALIDATION_SHARE * patients.size)))
        chosen = np.random.default_rng(seed).permutation(patients)[:n_val]
        is_val = np.isin(train.patient, chosen)
        note = (
            f"no validation split in the data: {n_val} of {patients.size} training patients "
            f"({int(is_val.sum())} windows) drawn with seed {seed} validate"
        )
        return TrainValParts(train.select(~is_val), train.select(is_val), note)
    order = np.argsort(train.start_s, kind="stable")
    cut = train.start_s[order[int(len(order) * (1 - VALIDATION_SHARE))]] if len(order) else 0.0
    span = (train.window.length - 1) * train.data.step_s
    is_val = train.start_s >= cut
    is_train = train.start_s + span < cut
    note = (
        f"no validation split and a single training {'stream' if train.stream else 'patient'}: "
        f"its last {int(is_val.sum())} windows in time validate (windows overlapping them are dropped)"
    )
    return TrainValParts(train.select(is_train), train.select(is_val), note)


def loss_weights(
    labels: NDArray[np.integer], class_weights: tuple[float, float] | None
) -> NDArray[np.float32]:
    """Per-window loss weights: ``class_weights[label]`` (unknown −1 counts as normal), else 1."""
    if class_weights is None:
        return np.ones(len(labels), np.float32)
    return np.where(labels == 1, class_weights[1], class_weights[0]).astype(np.float32)


def balanced_sample_weights(labels: NDArray[np.integer]) -> NDArray[np.float64]:
    """Return sampling weights that draw both classes equally often (unknown −1 is normal)."""
    abnormal = labels == 1
    counts = np.array([(~abnormal).sum(), abnormal.sum()], np.float64)
    weights: NDArray[np.float64] = 1.0 / counts[abnormal.astype(np.intp)]
    return weights


class BatchIndexSampler(Sampler[Tensor]):
    """Yield one index tensor per batch; the order depends only on (seed, epoch).

    Parameters
    ----------
    n : int
        Number of windows.
    batch_size : int
        Windows per batch (the last batch may be smaller).
    seed : int
        Run seed.
    shuffle : bool
        Draw a new permutation each epoch (else keep 0…n-1).
    sample_weights : numpy.ndarray, shape (n,), optional
        Draw n windows with replacement proportionally to these weights instead of a
        permutation (weighted sampling).
    rank, world_size : int
        This process's share under data parallelism: every process draws the same global
        order, which is padded (by repeating its start) to a multiple of ``world_size``
        and dealt out, so every process runs the same number of batches.
    device : torch.device
        Where the index tensors live (the device of the windows).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        seed: int,
        shuffle: bool,
        sample_weights: NDArray[np.float64] | None = None,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | None = None,
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.shuffle = shuffle
        self.sample_weights = None if sample_weights is None else torch.as_tensor(sample_weights)
        self.rank, self.world_size = rank, world_size
        self.device = device or torch.device("cpu")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields (called by Lightning)."""
        self.epoch = epoch

    def __len__(self) -> int:
        share = -(-self.n // self.world_size)
        return -(-share // self.batch_size)

    def order(self) -> Tensor:
        """Return this process's (n_share,) int64 window indices for the current epoch."""
        generator = torch.Generator().manual_seed(stream_seed(self.seed, self.epoch))
        if self.sample_weights is not None:
            order = torch.multinomial(
                self.sample_weights, self.n, replacement=True, generator=generator
            )
        elif self.shuffle:
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.arange(self.n)
        if self.n % self.world_size:
            order = torch.cat([order, order[: self.world_size - self.n % self.world_size]])
        return order[self.rank :: self.world_size].to(self.device)

    def __iter__(self) -> Iterator[Tensor]:
        order = self.order()
        return iter(torch.split(order, self.batch_size))


class ResidentWindows(Dataset[tuple[Tensor, Tensor]]):
    """Windows and per-window loss weights held as tensors; indexed by whole batches.

    Parameters
    ----------
    windows : Tensor, shape (N, C, L)
        Scaled windows.
    weights : Tensor, shape (N,)
        Loss weight of each window.
    """

    def __init__(self, windows: Tensor, weights: Tensor) -> None:
        self.windows, self.weights = windows, weights

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Gather one batch: (B, C, L) windows and (B,) weights for a (B,) index tensor."""
        return self.windows[index], self.weights[index]


def fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether ``nbytes`` of windows may live on ``device`` (always on CPU and MPS)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_SHARE * free


class WindowDataModule(pl.LightningDataModule):
    """Training and validation batches for one run.

    Parameters
    ----------
    train_windows, val_windows : numpy.ndarray, shape (N, C, L)
        Scaled windows of each part.
    train_weights : numpy.ndarray, shape (N_train,)
        Loss weight of each training window.
    sample_weights : numpy.ndarray, optional
        Weighted sampling of the training windows (see :class:`BatchIndexSampler`).
    batch_size : int
        Training batch size (validation batches are at least :data:`VAL_BATCH`).
    seed : int
        Run seed (epoch order).

    Attributes
    ----------
    resident : bool
        Whether the windows were put on the training device (set in ``setup``).
    """

    def __init__(
        self,
        train_windows: NDArray[np.float32],
        val_windows: NDArray[np.float32],
        train_weights: NDArray[np.float32],
        *,
        sample_weights: NDArray[np.float64] | None,
        batch_size: int,
        seed: int,
    ) -> None:
        super().__init__()
        self._arrays = (train_windows, val_windows, train_weights)
        self.sample_weights = sample_weights
        self.batch_size, self.seed = batch_size, seed
        self.resident = False
        self._train: ResidentWindows | None = None
        self._val: ResidentWindows | None = None

    def setup(self, stage: str) -> None:
        """Build the tensors, on the training device when they fit (else pinned on the host)."""
        train_x, val_x, train_w = (torch.from_numpy(a) for a in self._arrays)
        device, world = torch.device("cpu"), 1
        if self.trainer is not None:
            device, world = self.trainer.strategy.root_device, self.trainer.world_size
        # Validation is padded with weight-0 copies so every process gets a share and the
        # loss stays the exact mean over the real windows.
        pad = -len(val_x) % world
        val_w = torch.cat([torch.ones(len(val_x)), torch.zeros(pad)])
        if pad:
            val_x = torch.cat([val_x, val_x[torch.arange(pad) % len(val_x)]])
        tensors = [train_x, train_w, val_x, val_w]
        self.resident = fits_on(device, train_x.nbytes + val_x.nbytes)
        if self.resident:
            tensors = [t.to(device) for t in tensors]
        elif device.type == "cuda":
            tensors = [t.pin_memory() for t in tensors]
        self._train = ResidentWindows(tensors[0], tensors[1])
        self._val = ResidentWindows(tensors[2], tensors[3])

    def _loader(
        self, dataset: ResidentWindows | None, *, train: bool
    ) -> DataLoader[tuple[Tensor, Tensor]]:
        assert dataset is not None, "setup() must run first"
        rank = self.trainer.global_rank if self.trainer is not None else 0
        world = self.trainer.world_size if self.trainer is not None else 1
        sampler = BatchIndexSampler(
            len(dataset),
            self.batch_size if train else max(self.batch_size, VAL_BATCH),
            seed=self.seed,
            shuffle=train,
            sample_weights=self.sample_weights if train else None,
            rank=rank,
            world_size=world,
            device=dataset.windows.device,
        )
        # batch_size=None: the sampler already yields whole batches. num_workers=0: a batch
        # is one indexing op on resident memory, so worker processes would only add
        # inter-process copies and compete for the (two) cores the model needs.
        return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=0)

    def train_dataloader(self) -> DataLoader[tuple[Tensor, Tensor]]:
        """Return the shuffled (or weighted-sampled) training batches."""
        return self._loader(self._train, train=True)

    def val_dataloader(self) -> DataLoader[tuple[Tensor, Tensor]]:
        """Return the validation batches, in order."""
        return self._loader(self._val, train=False)
