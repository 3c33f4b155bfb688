"""LightningModule around the pure :class:`~vitalsentry.models.autoencoder.Autoencoder`.

Loss: mean squared reconstruction error per window, averaged with per-window weights
(all 1 in pre-training; the class weights in fine-tuning). Randomness (dropout masks,
augmentation) is re-seeded at the start of every epoch from (seed, epoch, rank), so a run
resumed from an end-of-epoch checkpoint continues exactly as an uninterrupted one.

With ``batch_splits`` > 1 (CPU, one process) each batch is trained as that many parts on
a pool of threads that run one intra-op thread each (on few cores the LSTM kernels run
faster as single-threaded parts than as one multi-threaded batch: ``bench_train.py``). Each part
returns its gradient (``torch.autograd.grad``) and the parts are summed in order, so runs
stay deterministic; each part draws its dropout masks from a generator seeded from the
epoch's random stream.

With ``cuda_graph`` (CUDA, one process) forward, loss and backward of a batch are replayed
as one CUDA graph (:class:`~vitalsentry.training.graphstep.StaticStep`); a non-finite loss
then skips its update on the device and is reported at the next check (every
:data:`GRAPH_CHECK_EVERY` steps and at the end of the epoch).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from vitalsentry.config import TrainConfig
from vitalsentry.data.schema import is_input_only
from vitalsentry.errors import TrainingError
from vitalsentry.models.autoencoder import (
    Autoencoder,
    dropout_generator,
    fused_dropout_on,
    set_lstm_path,
)
from vitalsentry.training.augment import amplitude_jitter, time_warp
from vitalsentry.training.data import stream_seed
from vitalsentry.training.graphstep import StaticStep

CHECKPOINT_KEY = "vitalsentry"
"""Key of this module's own state (curve, run identity) inside a Lightning checkpoint."""

_DROPOUT_STREAM, _AUGMENT_STREAM = 1, 2

GRAPH_CHECK_EVERY = 64
"""Steps between the checks of a captured step's non-finite flag (each check waits for the GPU)."""


class NonFiniteLossError(TrainingError):
    """The training loss became NaN or infinite (the step's update was not applied).

    Parameters
    ----------
    epoch, step : int
        1-based epoch and batch within the epoch.
    value : float
        The loss value (NaN or ±inf).
    """

    def __init__(self, epoch: int, step: int, value: float) -> None:
        self.epoch, self.step = epoch, step
        kind = "NaN" if value != value else "infinite"
        super().__init__(f"{kind} loss at epoch {epoch} step {step}")


def per_window_mse(recon: Tensor, x: Tensor) -> Tensor:
    """Mean squared error of each window over channels and steps: (B, C, L) → (B,)."""
    return (recon.float() - x).square().mean(dim=(1, 2))


class AutoencoderModule(pl.LightningModule):
    """Trains an autoencoder to reconstruct its (optionally augmented) input.

    Parameters
    ----------
    model : Autoencoder
        The model (its conv stacks are frozen here when ``train.freeze_conv``).
    train : TrainConfig
        Learning rate, seed, augmentation and freezing settings.
    feature_names : tuple of str
        Window channels; time features are never jittered.
    identity : dict
        What defines the run (configs, data fingerprint), saved in every checkpoint so
        ``resume`` can refuse a checkpoint of another run.

    Attributes
    ----------
    curve : list of dict
        One ``{"epoch", "train_loss", "val_loss"}`` per finished epoch (restored on resume).
    """

    vital_mask: Tensor

    def __init__(
        self,
        model: Autoencoder,
        train: TrainConfig,
        feature_names: tuple[str, ...],
        identity: dict[str, Any],
    ) -> None:
        super().__init__()
        self.model = model.train()  # a parent model loaded from a bundle arrives in eval mode
        self.train_config = train
        self.identity = identity
        self.curve: list[dict[str, float]] = []
        self.register_buffer(
            "vital_mask",
            torch.tensor([not is_input_only(n) for n in feature_names]),
            persistent=False,
        )
        self.frozen = model.conv_modules() if train.freeze_conv else ()
        for module in self.frozen:
            module.requires_grad_(False)
        self._generator: torch.Generator | None = None
        self._sums = torch.zeros(4)  # val loss·weight, val weight, train loss, train batches
        self._pool: ThreadPoolExecutor | None = None
        self._threads = 1
        self._static: StaticStep | None = None
        self.automatic_optimization = train.batch_splits == 1 and not train.cuda_graph
        set_lstm_path(model, train.lstm_path)
        self._recapture = False

    def configure_optimizers(self) -> Any:
        """Adam over the trainable parameters, with the one-cycle schedule when configured.

        The fused kernel (CPU and CUDA) does the same update in one pass over all
        parameters; it agrees with the per-tensor loop to float rounding. The schedule
        steps once per optimizer step; its state is saved in every checkpoint.
        """
        cfg = self.train_config
        params = [p for p in self.model.parameters() if p.requires_grad]
        fused = self.device.type in ("cpu", "cuda") or None
        optimizer = torch.optim.Adam(params, lr=cfg.lr, fused=fused)
        if cfg.lr_schedule == "constant":
            return optimizer
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=cfg.lr,
            total_steps=int(self.trainer.estimated_stepping_batches),
            pct_start=cfg.warmup_fraction,
            anneal_strategy="cos",
            cycle_momentum=False,  # Adam's betas stay fixed
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip the gradient norm to ``grad_clip`` (Lightning's hook; automatic optimization).

        Clipped directly: Lightning's bf16-mixed plugin refuses to clip for the fused Adam,
        although bf16 needs no loss scaling (the project trains in float32 or bf16 only).
        """
        if self.train_config.grad_clip > 0:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.train_config.grad_clip)

    def _update(self, optimizer: pl.core.optimizer.LightningOptimizer) -> None:
        """Clip, step the optimizer and the schedule (manual optimization)."""
        self.configure_gradient_clipping(optimizer.optimizer)
        optimizer.step()
        schedule = self.lr_schedulers()
        if schedule is not None:
            schedule.step()  # type: ignore[union-attr]

    def on_train_epoch_start(self) -> None:
        """Re-seed dropout and augmentation from (seed, epoch, rank); keep frozen layers in eval."""
        seed, epoch, rank = self.train_config.seed, self.current_epoch, self.global_rank
        torch.manual_seed(stream_seed(seed, epoch, rank, _DROPOUT_STREAM))
        self._generator = torch.Generator(self.device).manual_seed(
            stream_seed(seed, epoch, rank, _AUGMENT_STREAM)
        )
        for module in self.frozen:
            module.eval()
        self._sums = torch.zeros(4, device=self.device)
        if self._static is not None and self._static.graph is not None and self._recapture:
            # cuDNN's dropout state is re-seeded (above) at its next eager use only: drop the
            # graph so that this epoch's warm-up steps re-seed it and a new capture uses it.
            self.model.zero_grad(set_to_none=True)  # the eager steps need no gradients yet
            self._static = self._new_static_step()
        if self._static is not None:
            self._static.reset()

    def _augment(self, x: Tensor) -> Tensor:
        cfg = self.train_config
        if not (cfg.time_warp or cfg.jitter):
            return x
        assert self._generator is not None
        if cfg.time_warp:
            x = time_warp(x, cfg.warp_strength, self._generator)
        if cfg.jitter:
            x = amplitude_jitter(x, cfg.jitter_sigma, self._generator, vital_mask=self.vital_mask)
        return x

    def _loss(self, x: Tensor, weights: Tensor) -> Tensor:
        """Weighted mean reconstruction loss of a batch."""
        return (per_window_mse(self.model(x), x) * weights).sum() / weights.sum()

    def on_fit_start(self) -> None:
        """Build the static step (``cuda_graph``) or start the part threads (``batch_splits``).

        A captured step whose fused LSTM draws cuDNN dropout masks is captured again each
        epoch, so that every epoch's masks follow from its seed (deterministic resume).
        """
        cfg = self.train_config
        self._recapture = cfg.cuda_graph and fused_dropout_on(self.model, self.device)
        if cfg.cuda_graph:
            self._static = self._new_static_step()
        if cfg.batch_splits == 1:
            return
        self._threads = torch.get_num_threads()
        self._pool = ThreadPoolExecutor(
            self.train_config.batch_splits,
            thread_name_prefix="vitalsentry-part",
            initializer=torch.set_num_threads,  # in each part thread as it starts
            initargs=(1,),
        )

    def _new_static_step(self) -> StaticStep:
        model = self.model.config
        return StaticStep(
            self._loss,
            [p for p in self.model.parameters() if p.requires_grad],
            (self.train_config.batch_size, model.input_channels, model.seq_len),
            self.device,
            capture=self.device.type == "cuda",
        )

    def teardown(self, stage: str) -> None:
        """Release the step's threads or graph (after a finished fit)."""
        self.release_step()

    def release_step(self) -> None:
        """Free the captured graph, stop the part threads and restore the thread count.

        Lightning skips ``teardown`` when a fit fails, so the training loop calls this too.
        """
        self._static = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            torch.set_num_threads(self._threads)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Weighted reconstruction loss of one batch; stops on a NaN/inf loss.

        The eager steps stop before the update; a captured step skips the update on the
        device and stops at its next check.
        """
        windows, weights = batch
        x = self._augment(windows)
        if self.train_config.cuda_graph:
            loss = self._static_step(x, weights, batch_idx)
        else:
            loss = (
                self._loss(x, weights)
                if self.automatic_optimization
                else self._split_step(x, weights)
            )
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    self.current_epoch + 1, batch_idx + 1, float(loss.detach())
                )
            if not self.automatic_optimization:
                optimizer = self._optimizer()
                self._update(optimizer)
                optimizer.zero_grad(set_to_none=True)
        self._sums[2] += loss.detach()
        self._sums[3] += 1
        return loss

    def _optimizer(self) -> pl.core.optimizer.LightningOptimizer:
        optimizer = self.optimizers()
        assert isinstance(optimizer, pl.core.optimizer.LightningOptimizer)
        return optimizer

    def _static_step(self, x: Tensor, weights: Tensor, batch_idx: int) -> Tensor:
        """Run the (captured) static step and the Adam update it flags; check now and then."""
        if self._static is None:
            raise TrainingError("cuda_graph: the static step is built with the fit (on_fit_start)")
        loss, found_inf = self._static(x, weights)
        optimizer = self._optimizer()
        # Fused Adam skips the whole update where found_inf is 1 (GradScaler's protocol).
        optimizer.optimizer.found_inf = found_inf  # type: ignore[attr-defined]
        self._update(optimizer)
        if self._static.graph is None:
            optimizer.zero_grad(set_to_none=True)
        step = batch_idx + 1
        if step % GRAPH_CHECK_EVERY == 0 or step >= self.trainer.num_training_batches:
            first = int(self._static.first_bad)
            if first:
                value = float(self._static.bad_value)
                raise NonFiniteLossError(self.current_epoch + 1, first, value)
        return loss

    def _split_step(self, x: Tensor, weights: Tensor) -> Tensor:
        """Set the batch's gradient from its parts, trained on the part threads; return the loss."""
        if self._pool is None:
            raise TrainingError("batch_splits: the part threads start with the fit (on_fit_start)")
        parts = self.train_config.batch_splits
        seeds = torch.randint(0, 2**62, (parts,)).tolist()  # from the epoch's stream
        params = [p for p in self.model.parameters() if p.requires_grad]
        total = weights.sum()
        dtype = torch.get_autocast_dtype("cpu")
        autocast = torch.is_autocast_enabled("cpu")

        def part(xs: Tensor, ws: Tensor, seed: int) -> tuple[Tensor, tuple[Tensor | None, ...]]:
            masks = torch.Generator().manual_seed(seed)
            with torch.autocast("cpu", dtype=dtype, enabled=autocast), dropout_generator(masks):
                loss = (per_window_mse(self.model(xs), xs) * ws).sum() / total
            return loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)

        chunks = [
            (xs, ws, seed)
            for xs, ws, seed in zip(
                x.tensor_split(parts), weights.tensor_split(parts), seeds, strict=True
            )
            if len(xs)
        ]
        results = list(self._pool.map(part, *zip(*chunks, strict=True)))
        for i, param in enumerate(params):
            grads = [g for _, grad in results if (g := grad[i]) is not None]
            param.grad = torch.stack(grads).sum(dim=0) if grads else None
        return torch.stack([loss for loss, _ in results]).sum()

    def on_validation_epoch_start(self) -> None:
        """Reset the validation sums."""
        self._sums[:2] = 0

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Accumulate the (unweighted) reconstruction error; padding windows have weight 0."""
        windows, weights = batch
        self._sums[0] += (per_window_mse(self.model(windows), windows) * weights).sum()
        self._sums[1] += weights.sum()

    def on_validation_epoch_end(self) -> None:
        """Log ``val_loss`` (exact mean over all processes) and append the epoch to the curve."""
        sums = self.trainer.strategy.reduce(self._sums.clone(), reduce_op="sum")
        assert isinstance(sums, Tensor)
        val_loss = sums[0] / sums[1]
        self.log("val_loss", val_loss, prog_bar=True)
        self.curve.append(
            {
                "epoch": self.current_epoch + 1,
                "train_loss": float(sums[2] / sums[3].clamp(min=1)),
                "val_loss": float(val_loss),
            }
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the curve and run identity in the checkpoint."""
        checkpoint[CHECKPOINT_KEY] = {"curve": self.curve, "identity": self.identity}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the curve when resuming."""
        self.curve = list(checkpoint[CHECKPOINT_KEY]["curve"])
