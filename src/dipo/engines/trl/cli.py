"""`dipo train --config configs/X.yaml [--field value ...]`: GRPO / DAPO / DiPO / CDE with the TRL engine.

The YAML file and the command line fill three dataclasses (TRL's `TrlParser`: file values replace
the defaults, command-line flags replace the file): `TrainScriptArguments` (data, rewards, resume),
`DiPOConfig` (TRL's GRPOConfig + DiPO) and TRL's `ModelConfig` (model path, dtype, LoRA via peft).
Everything is validated before the model loads. The run directory (`output_dir`) gets the resolved
config (`config.yaml`), `metrics.jsonl`, `rollouts/`, checkpoints. The first Ctrl-C finishes the
current step, saves a checkpoint and stops; `--resume last` (or a checkpoint path) continues.

Multi-GPU: `accelerate launch -m dipo.engines.trl.cli --config ...` (DeepSpeed via accelerate's config).
"""

from __future__ import annotations

import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint
from trl import ModelConfig, TrlParser, get_peft_config

from dipo.engines.trl.config import DiPOConfig

DATASET_HELP = (
    "Training prompts: 'testbed:math' or 'testbed:tool' (synthetic offline tasks), a local .jsonl/.json/.parquet "
    "file, or a Hugging Face dataset id (needs network)."
)


@dataclass
class TrainScriptArguments:
    """Data, rewards and run control for `dipo train` (model and LoRA are TRL's ModelConfig)."""

    dataset: str = field(default="testbed:math", metadata={"help": DATASET_HELP})
    dataset_split: str = field(default="train", metadata={"help": "Split of a Hugging Face dataset."})
    problem_field: str = field(default="problem", metadata={"help": "Column holding the problem text."})
    answer_field: str = field(default="answer", metadata={"help": "Column holding the gold answer."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Use at most this many training rows."})
    heldout_dataset: str | None = field(
        default=None, metadata={"help": "Held-out problems for periodic eval/accuracy (same forms as dataset)."}
    )
    heldout_split: str = field(default="test", metadata={"help": "Split of the held-out dataset."})
    testbed_size: int = field(default=512, metadata={"help": "Number of synthetic testbed problems."})
    testbed_levels: list[int] = field(
        default_factory=lambda: [1, 2, 3, 4, 5], metadata={"help": "Difficulty levels of testbed problems: 1-5 graded, 6 = maths question twists "
                                                    "(confidently wrong at the warm start; maths only)."}
    )
    rewards: list[str] = field(
        default_factory=lambda: ["math"],
        metadata={"help": "Verifier reward functions from dipo.rewards: 'math' (boxed answer, math-verify), "
                          "'tool_call' (function-call AST check). Several are summed (see reward_weights)."},
    )
    resume: str | None = field(
        default=None, metadata={"help": "'last' (latest checkpoint in output_dir) or a checkpoint directory."}
    )
    dry_run: bool = field(
        default=False, metadata={"help": "Validate, load model/data and build the trainer, then stop."}
    )

    def __post_init__(self) -> None:
        for name in ("heldout_dataset", "resume"):  # the command line can only say "none"
            if str(getattr(self, name)).lower() in ("", "none", "null"):
                setattr(self, name, None)
        unknown = [r for r in self.rewards if r not in REWARD_NAMES]
        if unknown:
            raise ValueError(f"TrainScriptArguments.rewards={self.rewards!r}: unknown {unknown}; choose from {REWARD_NAMES}")
        if self.testbed_size < 1:
            raise ValueError(f"TrainScriptArguments.testbed_size={self.testbed_size!r}: must be >= 1")


REWARD_NAMES = ("math", "tool_call", "label")


def parse(argv: list[str]) -> tuple[TrainScriptArguments, DiPOConfig, ModelConfig]:
    """Parse `--config FILE` plus command-line overrides into the three configs (validated)."""
    parser = TrlParser((TrainScriptArguments, DiPOConfig, ModelConfig))
    script, training, model = parser.parse_args_and_config(argv)
    if not model.model_name_or_path:
        raise ValueError("ModelConfig.model_name_or_path: missing (a model directory, a hub id, or 'testbed')")
    return script, training, model


def save_resolved_config(path: Path, script, training, model) -> None:
    """One flat YAML mapping that `dipo train --config` reads back."""
    resolved = {**asdict(script), **training.to_dict(), **asdict(model)}
    # TRL derives generation_batch_size from steps_per_generation and refuses both at once
    resolved = {k: v for k, v in resolved.items() if k in _settable_fields() and k != "generation_batch_size"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(resolved, sort_keys=True))


def _settable_fields() -> set[str]:
    from dataclasses import fields

    return {f.name for cls in (TrainScriptArguments, DiPOConfig, ModelConfig) for f in fields(cls) if f.init}


class GracefulInterrupt(TrainerCallback):
    """First Ctrl-C: finish the step, save a checkpoint, stop. Second Ctrl-C: stop at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            signal.signal(signal.SIGINT, self._previous)
            raise KeyboardInterrupt
        self.requested = True
        print("\nInterrupted: saving a checkpoint after this step (Ctrl-C again to stop now).", file=sys.stderr)

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
        return control

    def restore(self) -> None:
        signal.signal(signal.SIGINT, self._previous)


def build_trainer(script: TrainScriptArguments, training: DiPOConfig, model_args: ModelConfig):
    """Load data and rewards, then the model (through TRL), and return a `DiPOTrainer`."""
    from dipo.engines.trl.data import load_heldout, load_train, reward_functions
    from dipo.engines.trl.trainer import DiPOTrainer

    train_dataset = load_train(script)  # data errors surface before the model loads
    heldout = load_heldout(script)
    rewards = reward_functions(script.rewards)
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
    return DiPOTrainer(
        model=model, reward_funcs=rewards, args=training, train_dataset=train_dataset,
        heldout_dataset=heldout, peft_config=get_peft_config(model_args),
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        script, training, model_args = parse(argv)
    except ValueError as exc:
        print(f"dipo train: {exc}", file=sys.stderr)
        return 2
    run_dir = Path(training.output_dir)
    resume = None
    if script.resume:
        if script.resume == "last":
            resume = get_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None
        else:
            resume = script.resume
        if resume is None or not Path(resume).is_dir():
            print(f"dipo train: --resume {script.resume}: no checkpoint found in {run_dir}", file=sys.stderr)
            return 2
    try:
        trainer = build_trainer(script, training, model_args)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"dipo train: {exc}", file=sys.stderr)
        return 2
    if trainer.accelerator.is_main_process:
        save_resolved_config(run_dir / "config.yaml", script, training, model_args)
    if script.dry_run:
        print(f"dipo train: dry run OK ({training.method}, {len(trainer.train_dataset)} prompts); run dir {run_dir}")
        return 0
    interrupt = GracefulInterrupt()
    trainer.add_callback(interrupt)
    try:
        trainer.train(resume_from_checkpoint=resume)
    finally:
        interrupt.restore()
    if interrupt.requested:
        print(f"dipo train: stopped at step {trainer.state.global_step}; resume with --resume last", file=sys.stderr)
        return 130
    trainer.save_model(str(run_dir / "final"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
