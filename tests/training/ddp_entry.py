"""Entry point of the DDP test: 1 epoch on 2 CPU processes (gloo), bundle at ``argv[1]``.

Run as a script (``python tests/training/ddp_entry.py OUT``): Lightning's DDP launcher
starts the second process by running the same command again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import make_prepared

from vitalsentry.config import ModelConfig, TrainConfig
from vitalsentry.training.pretrain import pretrain


def main() -> None:
    out = Path(sys.argv[1])
    data = make_prepared(n_patients=10, per_patient=7)
    model = ModelConfig(input_channels=4, seq_len=64, latent_dim=8, lstm_hidden=16)
    result = pretrain(
        data,
        model,
        TrainConfig(batch_size=8, max_epochs=1),
        out,
        accelerator="cpu",
        devices=2,
        progress=False,
    )
    summary = {
        "rank": result.rank,
        "epochs": result.epochs,
        "val_loss": result.best_val_loss,
        "curve": result.curve,
    }
    (out.parent / f"result-rank{result.rank}.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
