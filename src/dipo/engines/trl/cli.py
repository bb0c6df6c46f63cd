"""`dipo train --config configs/trl/X.yaml [--field value ...]`: GRPO / DAPO / DiPO / CDE with the TRL engine.

The YAML file and the command line fill three dataclasses (`args.parse`, as TRL's `TrlParser`):
`TrainScriptArguments`, `DiPOConfig` (TRL's GRPOConfig + DiPO) and TRL's `ModelConfig`. Everything is
validated before the model loads; bad input is one line on stderr and exit code 2 (`dipo._cli_util`).
This module wires the trainer and runs it.

Run directory (`output_dir`): resolved config (`config.yaml`), `metrics.jsonl`, `rollouts/`,
checkpoints. An existing run directory is refused unless resuming (`--resume_from_checkpoint last`
or a checkpoint path) or `--overwrite_output_dir`; a lock file stops a second writer (the lifecycle is
the engine kit's, `dipo.engines.kit.run_dir`); `--dry_run` writes nothing. The first Ctrl-C or SIGTERM finishes the current step, saves a checkpoint and stops.

Multi-GPU: `accelerate launch -m dipo.engines.trl.cli --config ...` (DeepSpeed via accelerate's config).
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

from transformers import TrainerCallback
from trl import ModelConfig, get_peft_config

from dipo._cli_util import UsageError, check_model_path, filter_known_warnings, run_cli
from dipo._progress import quiet_progress
from dipo.data.run_files import CONFIG_FILE
from dipo.engines.kit.run_dir import RunLock, check_run_dir, clear_run_dir, resolve_resume
from dipo.engines.trl.args import (  # noqa: F401  (the parser's names, re-exported for `dipo.engines.trl.cli` users)
    REWARD_NAMES,
    TrainScriptArguments,
    build_parser,
    effective_settings,
    parse,
    save_resolved_config,
)
from dipo.engines.trl.config import DiPOConfig

# -- training ---------------------------------------------------------------------------------------


class GracefulInterrupt(TrainerCallback):
    """First Ctrl-C or SIGTERM (what SLURM and Kubernetes send before a kill): finish the step, save a
    checkpoint, stop. A second one stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.requested:
            self.restore()
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint after this step (again to stop now).",
              file=sys.stderr)

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
        return control

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def build_trainer(script: TrainScriptArguments, training: DiPOConfig, model_args: ModelConfig):
    """Load rewards and data, then the model (through TRL), and return a `DiPOTrainer`."""
    from dipo.engines.trl.data import load_heldout, load_train, reward_functions
    from dipo.engines.trl.trainer import DiPOTrainer

    rewards = reward_functions(script.reward_funcs)  # name errors surface in a second
    train_dataset = load_train(script)  # data errors surface before the model loads
    heldout = load_heldout(script)
    model = model_args.model_name_or_path
    if model == "testbed":
        from dipo.testbed import build_testbed

        model = str(build_testbed())
    init_kwargs = dict(training.model_init_kwargs or {})
    if model_args.dtype and "dtype" not in init_kwargs:
        init_kwargs["dtype"] = model_args.dtype
    if model_args.attn_implementation and "attn_implementation" not in init_kwargs:
        init_kwargs["attn_implementation"] = model_args.attn_implementation
    training.model_init_kwargs = init_kwargs or None
    trainer = DiPOTrainer(
        model=model, reward_funcs=rewards, args=training, train_dataset=train_dataset,
        heldout_dataset=heldout, peft_config=get_peft_config(model_args),
    )
    quiet_progress(trainer)
    return trainer


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def dry_run(script, training, model_args) -> int:
    """Print the effective settings and build everything in a throw-away directory: writes nothing."""
    print(effective_settings(script, training, model_args))
    run_dir = training.output_dir
    with tempfile.TemporaryDirectory(prefix="dipo-dry-run-") as tmp:
        training.output_dir = tmp
        trainer = build_trainer(script, training, model_args)
        training.output_dir = run_dir
    print(f"dipo train: dry run OK ({training.method}, {len(trainer.train_dataset)} prompts); nothing written "
          f"(run dir would be {run_dir})")
    return 0


def warn_single_cpu_launch(num_processes: int) -> None:
    """`accelerate launch --cpu --num_processes N` runs ONE process: with `--cpu`, accelerate (1.16) takes its
    simple launcher, which sets MASTER_ADDR for N > 1 but starts no torchrun. Say so rather than train on one."""
    env = os.environ
    if num_processes == 1 and env.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_ADDR" in env \
            and "WORLD_SIZE" not in env:
        print("dipo train: warning: accelerate launch --cpu started 1 process; for several CPU processes use "
              "`accelerate launch --multi_gpu --num_processes N` with use_cpu: true (gloo; docs/trl.md)",
              file=sys.stderr)


def train(argv: list[str]) -> int:
    filter_known_warnings()
    script, training, model_args = parse(argv)
    check_model_path(model_args.model_name_or_path, "--model_name_or_path", allow={"testbed"})
    run_dir = Path(training.output_dir)
    if script.dry_run:
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"--output_dir {run_dir}: is a file, not a directory")
        return dry_run(script, training, model_args)
    resume = resolve_resume(training.resume_from_checkpoint, run_dir, inexact_ok=training.allow_inexact_resume)
    if _is_main_process():  # other ranks would see the config.yaml rank 0 has just written
        check_run_dir(run_dir, resuming=resume is not None, overwrite=script.overwrite_output_dir)
    created = not run_dir.exists()
    lock = RunLock(run_dir) if _is_main_process() else None
    try:
        if script.overwrite_output_dir and resume is None and _is_main_process():
            clear_run_dir(run_dir)
        trainer = build_trainer(script, training, model_args)
        if trainer.accelerator.is_main_process:
            save_resolved_config(run_dir / CONFIG_FILE, script, training, model_args)
            start = f"resuming from {resume}" if resume else "from scratch"
            ranks = training.world_size
            print(f"dipo train: {training.method} on {script.dataset_name} ({len(trainer.train_dataset)} prompts), "
                  f"{start}{f', {ranks} processes' if ranks > 1 else ''}; run directory {run_dir}", file=sys.stderr)
            warn_single_cpu_launch(ranks)
        interrupt = GracefulInterrupt()
        trainer.add_callback(interrupt)
        try:
            trainer.train(resume_from_checkpoint=resume)
        finally:
            interrupt.restore()
        if interrupt.requested:
            print(f"dipo train: stopped at step {trainer.state.global_step}; continue with "
                  f"--resume_from_checkpoint last", file=sys.stderr)
            return 128 + interrupt.signum
        trainer.save_model(str(run_dir / "final"))
        if trainer.accelerator.is_main_process:
            print(f"dipo train: done; model in {run_dir / 'final'}, plots: dipo analyze {run_dir}", file=sys.stderr)
        return 0
    finally:
        if lock is not None:
            lock.release()
            if created and [p.name for p in run_dir.iterdir()] == [lock.path.name]:  # failed before writing
                lock.path.unlink()
                run_dir.rmdir()


def main(argv: list[str] | None = None) -> int:
    return run_cli("dipo train", train, argv)


if __name__ == "__main__":
    sys.exit(main())
