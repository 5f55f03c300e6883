"""``python -m apps.finetune``: fine-tune SAM 2 on your own videos and images, on one device or many
(torchrun), resumable, with checkpoints the app, the widget, ``build_sam2`` and the official package load.

Modules: `arguments` (the flags), `cli` (the command: setup, messages, exit codes), `run` (the training
loop), `training_data` and `micro_batches` (the checked data and the clips each process computes),
`model_setup` (network, freezing, optimizer, schedule), `checkpoints` (``last.pt``/``best.pt`` and resuming),
`logs` and `progress` (CSV, PNG, progress bar), `validation` (J&F on a DAVIS-layout set), `distributed`
(torch.distributed), `interrupt` (Ctrl-C saves and stops at the end of the step).

``main(argv)`` runs the command in this process (a notebook, a benchmark) and returns its exit status.
"""

from apps.finetune.cli import main

__all__ = ["main"]
