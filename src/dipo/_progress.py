"""A Hugging Face Trainer progress bar without a raw metric dict per logging step.

Used by `dipo train` and the testbed's SFT build: the metrics already go to metrics.jsonl (and
`report_to`); the console keeps the bar with its ETA and a few numbers in its postfix.
"""

from __future__ import annotations

from transformers.trainer_callback import ProgressCallback


class QuietProgressCallback(ProgressCallback):
    """TRL's progress bar with ETA, without a raw metric dict per step: the bar shows reward,
    held-out accuracy and loss; `--log_level debug` (the trainer's `log_level`) restores the dicts."""

    SHOWN = {"reward": "reward", "eval/accuracy": "heldout_acc", "loss": "loss"}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if args.log_level == "debug":
            return super().on_log(args, state, control, logs=logs, **kwargs)
        if state.is_world_process_zero and self.training_bar is not None and logs:
            shown = {short: f"{float(logs[k]):.3g}" for k, short in self.SHOWN.items()
                     if isinstance(logs.get(k), (int, float))}
            if shown:
                self.training_bar.set_postfix(shown, refresh=False)


def quiet_progress(trainer) -> None:
    """Swap a trainer's default progress bar (if it has one) for `QuietProgressCallback`."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgressCallback)
