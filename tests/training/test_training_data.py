from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
import torch

from vitalsentry.data.prepared import PreparedData
from vitalsentry.training.data import (
    BatchIndexSampler,
    ResidentWindows,
    WindowDataModule,
    balanced_sample_weights,
    loss_weights,
    stream_seed,
    train_val_parts,
)


def test_validation_is_split_one_when_present(prepared: PreparedData) -> None:
    parts = train_val_parts(prepared, seed=0)
    assert (parts.train.split == 0).all() and (parts.val.split == 1).all()
    assert len(parts.train) == int((prepared.split == 0).sum())
    assert "held-out patients (split 1)" in parts.note


def test_seventy_thirty_data_carves_training_patients(
    make_data: Callable[..., PreparedData],
) -> None:
    data = make_data(n_patients=20, split=(0.7, 0.3))
    assert not (data.split == 1).any()
    parts = train_val_parts(data, seed=0)
    train_patients, val_patients = set(parts.train.patient), set(parts.val.patient)
    assert train_patients.isdisjoint(val_patients)
    assert train_patients | val_patients == set(data.patient[data.split == 0])
    assert len(val_patients) == 2  # 15 % of 14 training patients
    assert "no validation split" in parts.note and "seed 0" in parts.note
    again = train_val_parts(data, seed=0)
    assert set(again.val.patient) == val_patients
    assert set(train_val_parts(data, seed=5).val.patient) != val_patients


def test_single_stream_validates_on_its_last_windows_without_overlap(
    make_data: Callable[..., PreparedData],
) -> None:
    data = make_data(n_patients=1, per_patient=40, split=(0.7, 0.3))
    data = replace(data, split=np.zeros(len(data), np.int8), stream=True)
    parts = train_val_parts(data, seed=0)
    span = (data.window.length - 1) * data.data.step_s
    assert len(parts.val) == 6 and len(parts.train) > 0
    assert parts.train.start_s.max() + span < parts.val.start_s.min()
    assert "single training stream" in parts.note


def test_loss_weights_treat_unknown_as_normal() -> None:
    labels = np.array([0, 1, -1, 1], np.int8)
    np.testing.assert_allclose(loss_weights(labels, (0.6, 1.4)), [0.6, 1.4, 0.6, 1.4])
    np.testing.assert_array_equal(loss_weights(labels, None), np.ones(4))


def test_balanced_sample_weights_give_each_class_half_the_mass() -> None:
    labels = np.array([0] * 9 + [1] + [-1] * 6, np.int8)
    w = balanced_sample_weights(labels)
    assert w[labels == 1].sum() == pytest.approx(w[labels != 1].sum())


def test_sampler_order_depends_only_on_seed_and_epoch() -> None:
    sampler = BatchIndexSampler(50, 8, seed=3, shuffle=True)
    first = torch.cat(list(sampler))
    assert sorted(first.tolist()) == list(range(50))
    assert len(list(sampler)) == len(sampler) == 7
    assert torch.equal(first, torch.cat(list(BatchIndexSampler(50, 8, seed=3, shuffle=True))))
    sampler.set_epoch(1)
    assert not torch.equal(first, torch.cat(list(sampler)))
    sampler.set_epoch(0)
    assert torch.equal(first, torch.cat(list(sampler)))
    assert torch.equal(
        torch.cat(list(BatchIndexSampler(10, 4, seed=0, shuffle=False))), torch.arange(10)
    )


def test_sampler_shards_are_disjoint_equal_and_cover_everything() -> None:
    shards = [
        torch.cat(list(BatchIndexSampler(11, 2, seed=1, shuffle=True, rank=r, world_size=3)))
        for r in range(3)
    ]
    assert {len(s) for s in shards} == {4}
    assert set(torch.cat(shards).tolist()) == set(range(11))
    lengths = {
        len(BatchIndexSampler(11, 2, seed=1, shuffle=True, rank=r, world_size=3)) for r in range(3)
    }
    assert lengths == {2}


def test_weighted_sampling_balances_classes() -> None:
    labels = np.array([0] * 90 + [1] * 10, np.int8)
    sampler = BatchIndexSampler(
        100, 10, seed=0, shuffle=True, sample_weights=balanced_sample_weights(labels)
    )
    drawn = torch.cat([torch.cat(list(sampler)) for sampler.epoch in range(20)])
    share = float((torch.from_numpy(labels)[drawn] == 1).float().mean())
    assert 0.45 < share < 0.55


def test_resident_windows_gather_whole_batches() -> None:
    x = torch.arange(24, dtype=torch.float32).reshape(6, 2, 2)
    w = torch.arange(6, dtype=torch.float32)
    batch, weights = ResidentWindows(x, w)[torch.tensor([4, 1])]
    assert torch.equal(batch, x[[4, 1]]) and torch.equal(weights, torch.tensor([4.0, 1.0]))


def test_data_module_batches_without_a_trainer() -> None:
    train = np.random.default_rng(0).normal(size=(10, 2, 8)).astype(np.float32)
    val = train[:3].copy()
    dm = WindowDataModule(
        train, val, np.ones(10, np.float32), sample_weights=None, batch_size=4, seed=0
    )
    dm.setup("fit")
    assert dm.resident
    batches = list(dm.train_dataloader())
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    val_batches = list(dm.val_dataloader())
    torch.testing.assert_close(torch.cat([b[0] for b in val_batches]), torch.from_numpy(val))


def test_stream_seed_mixes_all_parts() -> None:
    seeds = {stream_seed(s, e, r) for s in range(3) for e in range(3) for r in range(2)}
    assert len(seeds) == 18
    assert stream_seed(1, 2) == stream_seed(1, 2)
    assert 0 <= stream_seed(7, 7) < 2**63
