"""A training step on fixed buffers, captured once as a CUDA graph and replayed per batch.

At the seed's batch 32 a CUDA training step is bound by kernel launches (dozens of small
kernels per LSTM layer), not by the GPU. Capturing forward, loss and backward in one CUDA
graph turns them into a single launch per batch. The optimizer step stays outside the
graph (fused Adam is a couple of kernels), so Lightning keeps counting and checkpointing
optimizer steps as usual.

A graph replays fixed memory, so the step reads its batch from buffers of the training
batch size: the last, smaller batch of an epoch is padded with weight-0 rows, which leaves
the weighted mean loss and its gradient unchanged. A non-finite loss cannot be checked
without waiting for the GPU, so the step flags it on the device instead: the flag makes
fused Adam skip that update, and the caller reads the first flagged step now and then.
The captured backward writes each gradient into the graph's own tensor; every replay puts
those tensors back into ``.grad`` (Lightning sets the gradients to None before each
validation, which would otherwise leave the optimizer without gradients).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from vitalsentry.errors import TrainingError

WARMUP_STEPS = 3
"""Eager steps before the capture (on a side stream, as CUDA graphs need)."""


class StaticStep:
    """Forward, weighted loss and backward of one batch on fixed input buffers.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(windows, weights)`` → scalar weighted mean loss (with grad).
    params : sequence of Tensor
        The parameters that receive gradients.
    batch_shape : tuple of int
        ``(batch_size, channels, length)`` of the input buffer.
    device : torch.device
        Where the buffers live.
    capture : bool
        Capture the step as a CUDA graph after :data:`WARMUP_STEPS` eager steps (CUDA
        only); otherwise every call runs the step eagerly on the buffers.

    Attributes
    ----------
    steps : Tensor
        Steps run since :meth:`reset` (int64, on the device).
    first_bad : Tensor
        1-based step of the first non-finite loss since :meth:`reset`, 0 if none.
    bad_value : Tensor
        That loss value.
    """

    def __init__(
        self,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        params: Sequence[Tensor],
        batch_shape: tuple[int, int, int],
        device: torch.device,
        *,
        capture: bool,
    ) -> None:
        self.loss_fn = loss_fn
        self.params = list(params)
        self.capture = capture
        self.x = torch.zeros(batch_shape, device=device)
        self.w = torch.zeros(batch_shape[0], device=device)
        self.steps = torch.zeros((), dtype=torch.int64, device=device)
        self.first_bad = torch.zeros((), dtype=torch.int64, device=device)
        self.bad_value = torch.zeros((), device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self._outputs: tuple[Tensor, Tensor] | None = None
        self._grads: list[Tensor | None] = []
        self._eager_runs = 0

    def reset(self) -> None:
        """Restart the step count and the non-finite record (e.g. each epoch)."""
        for counter in (self.steps, self.first_bad, self.bad_value):
            counter.zero_()

    def __call__(self, x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        """Run the step on a batch; return its loss and ``found_inf`` (1.0 when non-finite).

        Gradients are left in the parameters' ``.grad``; they must be None (``zero_grad(
        set_to_none=True)``) before every eager step and the capture, and are the graph's
        own tensors after it. The returned tensors are likewise the graph's once captured:
        read them before the next call.
        """
        n = len(x)
        if n > len(self.x):
            raise TrainingError(f"batch of {n} windows exceeds the step's {len(self.x)}")
        self.x[:n].copy_(x)
        self.w[:n].copy_(w)
        self.w[n:].zero_()
        if self.graph is not None:
            self.graph.replay()
            for param, grad in zip(self.params, self._grads, strict=True):
                param.grad = grad
            assert self._outputs is not None
            return self._outputs
        if not self.capture:
            return self._body()
        if self._eager_runs < WARMUP_STEPS:
            self._eager_runs += 1
            return self._on_side_stream()
        return self._capture()

    def _body(self) -> tuple[Tensor, Tensor]:
        loss = self.loss_fn(self.x, self.w)
        loss.backward()  # type: ignore[no-untyped-call]
        loss = loss.detach()
        bad = ~torch.isfinite(loss)
        self.steps.add_(1)
        first = bad & (self.first_bad == 0)
        self.first_bad.copy_(torch.where(first, self.steps, self.first_bad))
        self.bad_value.copy_(torch.where(first, loss, self.bad_value))
        return loss, bad.float()

    def _on_side_stream(self) -> tuple[Tensor, Tensor]:
        stream = torch.cuda.Stream(self.x.device)  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream(self.x.device))
        with torch.cuda.stream(stream):
            outputs = self._body()
        torch.cuda.current_stream(self.x.device).wait_stream(stream)
        return outputs

    def _capture(self) -> tuple[Tensor, Tensor]:
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                outputs = self._body()
        except RuntimeError as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise TrainingError(
                f"cuda_graph: capturing the training step failed ({reason}); "
                "train without cuda_graph"
            ) from None
        self.graph, self._outputs = graph, outputs
        self._grads = [param.grad for param in self.params]
        graph.replay()
        return outputs
