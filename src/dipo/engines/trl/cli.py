"""`dipo train --config configs/trl/X.yaml [--field value ...]`: GRPO / DAPO / DiPO / CDE with the TRL engine.

The YAML file and the command line fill three dataclasses (as TRL's `TrlParser`: file values replace
the defaults, command-line flags replace the file): `TrainScriptArguments` (data, rewards, run
control; TRL's script names), `DiPOConfig` (TRL's GRPOConfig + DiPO) and TRL's `ModelConfig` (model
path, dtype, LoRA via peft). Everything is validated before the model loads; bad input is one line
on stderr and exit code 2 (`dipo._cli_util`).

Run directory (`output_dir`): resolved config (`config.yaml`), `metrics.jsonl`, `rollouts/`,
checkpoints. An existing run directory is refused unless resuming (`--resume_from_checkpoint last`
or a checkpoint path) or `--overwrite_output_dir`; a lock file stops a second writer; `--dry_run`
writes nothing. The first Ctrl-C or SIGTERM finishes the current step, saves a checkpoint and stops.

Multi-GPU: `accelerate launch -m dipo.engines.trl.cli --config ...` (DeepSpeed via accelerate's config).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainerCallback
from trl import GRPOConfig, ModelConfig, get_peft_config

from dipo._cli_util import (
    UsageError,
    check_model_path,
    filter_known_warnings,
    normalize_flags,
    run_cli,
    unknown_message,
)
from dipo._progress import quiet_progress
from dipo.core.config import GROUP_RULES
from dipo.engines.kit.datasets import DATASET_LOADERS
from dipo.engines.kit.rewards import reward_target
from dipo.engines.kit.run_dir import CONFIG_FILE, METRICS_FILE, ROLLOUTS_DIR
from dipo.engines.trl.config import METHOD_PRESETS, METHODS, DiPOConfig
from dipo.engines.trl.data import REWARD_FUNCTIONS

REWARD_NAMES = tuple(REWARD_FUNCTIONS)  # built-in reward names; dotted import paths work too

DATASET_HELP = (
    f"Training prompts: a registered dataset ({', '.join(DATASET_LOADERS)}; 'testbed:' ones are synthetic and "
    "offline, 'labels:PATH' classification rows), a short name of the data directory (e.g. 'math500'), a local "
    ".jsonl/.json/.parquet file, a Hugging Face dataset id (network), or a name your code registered with "
    "dipo.engines.kit.register_dataset."
)
REWARD_HELP = (
    "Reward functions, summed (see reward_weights): built-in names ('math' = boxed answer by math-verify, "
    "'tool_call' = function-call AST check) or dotted import paths of your own TRL-style reward function "
    "('my_pkg.rewards:fn' or 'my_pkg.rewards.fn'; the current directory is importable)."
)

# Old script-level names -> TRL's names. Accepted (with a warning) for one release.
DEPRECATED_NAMES = {
    "dataset": "dataset_name",
    "dataset_split": "dataset_train_split",
    "heldout_split": "dataset_test_split",
    "rewards": "reward_funcs",
    "resume": "resume_from_checkpoint",
}

# Enumerated DiPO fields typed `str` in the config: their choices are shown in --help.
FIELD_CHOICES = {"method": METHODS, "group_rule": GROUP_RULES}


@dataclass
class TrainScriptArguments:
    """Data, rewards and run control for `dipo train` (model and LoRA are TRL's ModelConfig).

    Names follow TRL's `ScriptArguments` / `trl grpo` (`dataset_name`, `dataset_config`,
    `dataset_train_split`, `dataset_test_split`, `reward_funcs`)."""

    dataset_name: str = field(default="testbed:math", metadata={"help": DATASET_HELP})
    dataset_config: str | None = field(
        default=None, metadata={"help": "Configuration name of a Hugging Face dataset (`name` of load_dataset)."}
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split used for training."})
    dataset_test_split: str = field(default="test", metadata={"help": "Split of the held-out dataset."})
    problem_field: str = field(default="problem", metadata={"help": "Column holding the problem text."})
    answer_field: str = field(default="answer", metadata={"help": "Column holding the gold answer."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Use at most this many training rows."})
    heldout_dataset: str | None = field(
        default=None,
        metadata={"help": "Held-out problems for the periodic mean@k eval/accuracy (same forms as dataset_name; "
                          "DiPO's generation eval, separate from TRL's eval_dataset loop)."},
    )
    testbed_size: int = field(default=512, metadata={"help": "Number of synthetic testbed problems."})
    testbed_levels: list[int] = field(
        default_factory=lambda: [1, 2, 3, 4, 5],
        metadata={"help": "Difficulty levels of testbed problems: 1-5 graded, 6 = maths question twists "
                          "(confidently wrong at the warm start; maths only)."},
    )
    reward_funcs: list[str] = field(default_factory=lambda: ["math"], metadata={"help": REWARD_HELP})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace the run in an existing output_dir (its config, logs, rollouts and checkpoints "
                          "are deleted). Without it, an existing run is refused unless resuming."},
    )
    dry_run: bool = field(
        default=False,
        metadata={"help": "Validate, print the effective settings, load model/data and build the trainer, then "
                          "stop. Writes nothing."},
    )

    def __post_init__(self) -> None:
        for name in ("heldout_dataset", "dataset_config"):  # the command line can only say "none"
            if str(getattr(self, name)).lower() in ("", "none", "null"):
                setattr(self, name, None)
        if not self.reward_funcs:
            raise ValueError("reward_funcs: empty; name at least one reward function")
        for name in self.reward_funcs:
            reward_target(name)  # the registry's check (closest-name hint), before anything loads
        if self.testbed_size < 1:
            raise ValueError(f"testbed_size={self.testbed_size!r}: must be >= 1")

    # Deprecated attribute names (one release), for code that read the old fields.
    @property
    def dataset(self) -> str:
        return self.dataset_name

    @property
    def rewards(self) -> list[str]:
        return self.reward_funcs


# -- parsing ---------------------------------------------------------------------------------------


class TrainArgumentParser(HfArgumentParser):
    """HfArgumentParser with dipo's error path: errors raise `UsageError`; `--a-b` = `--a_b`."""

    def error(self, message: str):
        raise UsageError(message)

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(normalize_flags(self._option_string_actions, args), namespace)


def build_parser() -> TrainArgumentParser:
    import torch

    parser = TrainArgumentParser(
        (TrainScriptArguments, DiPOConfig, ModelConfig), prog="dipo train",
        usage="dipo train --config FILE [--field value ...]   (every --field_name also as --field-name)",
        description=DESCRIPTION, formatter_class=CompactHelpFormatter, add_help=False,
    )
    run = parser.add_argument_group("run")
    run.add_argument("--config", metavar="FILE", help="YAML file of field: value pairs (see configs/); "
                                                       "command-line flags override it")
    run.add_argument("-h", "--help", action="help", help="show this help and exit")
    for action in parser._actions:
        if action.option_strings and action.option_strings[0].startswith("--no_"):
            action.help = argparse.SUPPRESS  # `--field false` says the same
        if action.dest == "debug":  # transformers' debug option; a bare --debug is dipo's (run_cli)
            action.help = "bare --debug: on an error, show the full traceback; --debug OPTION: transformers' " \
                          "debug modes (underflow_overflow, tpu_metrics_debug)"
            action.metavar = "[OPTION ...]"
            run._group_actions.append(action)
        if action.dest in FIELD_CHOICES:  # shown only: the config's own check names the field
            action.metavar = "{" + ",".join(FIELD_CHOICES[action.dest]) + "}"
        if action.dest == "bf16" and not torch.cuda.is_available():
            action.default = False  # TRL defaults bf16 on, which a CPU-only machine refuses
    _group_for_help(parser, run)
    return parser


DESCRIPTION = """\
GRPO / DAPO / DiPO / CDE on TRL's GRPOTrainer (DiPOConfig = GRPOConfig + DiPO's fields).
YAML values replace the defaults, command-line flags replace YAML values. Most used besides DiPO's fields:
--model_name_or_path, --dataset_name, --reward_funcs, --output_dir, --resume_from_checkpoint,
--learning_rate, --num_generations, --per_device_train_batch_size, --max_completion_length, --max_steps.

examples:
  dipo train --config configs/trl/testbed_math_dipo.yaml
  dipo train --config configs/trl/testbed_math_dipo.yaml --method dapo --output_dir runs/dapo
  dipo train --config configs/trl/testbed_math_dipo.yaml --resume_from_checkpoint last
  dipo train --config configs/trl/testbed_math_dipo.yaml --method grpo --dry_run    # effective settings, writes nothing"""


class CompactHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """One option string per field (`--name TYPE`), the first sentence of long library help texts."""

    def __init__(self, prog, **kwargs):
        kwargs.setdefault("width", max(100, shutil.get_terminal_size((100, 24)).columns - 2))
        kwargs.setdefault("max_help_position", 36)
        super().__init__(prog, **kwargs)

    def _format_action_invocation(self, action):
        if not action.option_strings:
            return super()._format_action_invocation(action)
        name = action.option_strings[-1] if action.option_strings[0].startswith("-h") else action.option_strings[0]
        if action.nargs == 0:
            return name
        if action.metavar:
            return f"{name} {action.metavar}"
        if action.choices:
            metavar = "{" + ",".join(map(str, action.choices)) + "}"
        else:
            metavar = getattr(action.type, "__name__", "str").upper().replace("STRING_TO_BOOL", "BOOL")
        return f"{name} {metavar}" + (" ..." if action.nargs in ("+", "*") else "")

    def _get_help_string(self, action):
        text = action.help or ""
        if getattr(action, "_library_help", False):
            text = _first_sentence(text)
        default = action.default
        if not (default is None or default is False or default in (argparse.SUPPRESS, "")) \
                and "default" not in text.lower() and action.nargs != 0:
            text += " (default: %(default)s)"
        return text


def _first_sentence(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    match = re.search(r"(?<=[.!?])\s", text)
    text = text[: match.start()] if match else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _group_for_help(parser: argparse.ArgumentParser, run_group) -> None:
    """Show `--config` first, then DiPO's fields, data/rewards, model, TRL's and transformers' fields."""
    own = list(vars(DiPOConfig).get("__annotations__", {}))
    sections = [
        ("DiPO and method presets (DiPOConfig)", own, False),
        ("data, rewards and run directory (dipo train)", {f.name for f in fields(TrainScriptArguments)}, False),
        ("model (TRL ModelConfig)", {f.name for f in fields(ModelConfig)}, True),
        ("GRPO (TRL GRPOConfig; details: TRL docs)", set(vars(GRPOConfig).get("__annotations__", {})), True),
        ("training (transformers TrainingArguments; details: transformers docs)", None, True),
    ]
    groups = [(parser.add_argument_group(title), names, library) for title, names, library in sections]
    for group in parser._action_groups[:2]:  # argparse's default "positional" and "options" sections
        for action in list(group._group_actions):
            if action.dest in ("config", "help", "debug"):
                continue
            target, _, library = next(g for g in groups if g[1] is None or action.dest in g[1])
            action._library_help = library
            target._group_actions.append(action)
            group._group_actions.remove(action)
    order = {name: i for i, name in enumerate(own)}
    groups[0][0]._group_actions.sort(key=lambda a: order.get(a.dest, -1))
    parser._action_groups = [run_group] + [g for g, _, _ in groups]


def load_yaml_config(path: str, _seen: tuple[str, ...] = ()) -> dict:
    """The YAML mapping of a config file; bad YAML names its line and column. A `base: OTHER.yaml` key
    (relative to this file) starts from that file's mapping; this file's keys replace the base's."""
    if str(Path(path).resolve()) in _seen:
        raise UsageError(f"--config {path}: 'base' loops back to itself ({' -> '.join(_seen)})")
    try:
        text = Path(path).read_text()
    except IsADirectoryError:
        raise UsageError(f"--config {path}: is a directory, not a YAML file") from None
    except OSError as exc:
        raise UsageError(f"--config {path}: {exc.strerror or exc}") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UsageError(f"--config {path}:{where} invalid YAML ({problem})") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise UsageError(f"--config {path}: must be a YAML mapping of field: value, got {type(config).__name__}")
    base = config.pop("base", None)
    if base is None:
        return config
    if not isinstance(base, str) or not base:
        raise UsageError(f"--config {path}: 'base' must be the path of another YAML file, got {base!r}")
    return {**load_yaml_config(str(Path(path).parent / base), (*_seen, str(Path(path).resolve()))), **config}


def _deprecated(old: str, new: str, where: str) -> None:
    print(f"dipo train: warning: {where}'{old}' is deprecated, use '{new}' (the old name goes in the next "
          "release)", file=sys.stderr)


def _rename_deprecated_flags(argv: list[str]) -> list[str]:
    out = []
    for token in argv:
        if token == "--":
            break
        name, eq, value = token.partition("=")
        old = name[2:].replace("-", "_") if name.startswith("--") else None
        if old in DEPRECATED_NAMES:
            _deprecated(f"--{old}", f"--{DEPRECATED_NAMES[old]}", "")
            token = f"--{DEPRECATED_NAMES[old]}{eq}{value}"
        out.append(token)
    return out + argv[len(out):]


def _config_tokens(parser: TrainArgumentParser, config: dict, path: str) -> list[str]:
    """Command-line tokens for a YAML mapping (so YAML values get the same type checks as flags).

    None and mappings have no command-line form: they become parser defaults, as in TRL's parser."""
    actions = {a.dest: parser._option_string_actions.get(f"--{a.dest}", a) for a in parser._actions
               if a.option_strings}
    tokens: list[str] = []
    for key, value in config.items():
        key = str(key)
        if key == "env":
            if not isinstance(value, dict):
                raise UsageError(f"--config {path}: 'env' must be a mapping of environment variables")
            os.environ.update({str(k): str(v) for k, v in value.items()})
            continue
        if key in DEPRECATED_NAMES and DEPRECATED_NAMES[key] not in config:
            _deprecated(key, DEPRECATED_NAMES[key], f"{path}: ")
            key = DEPRECATED_NAMES[key]
        if key not in actions or key in ("config", "help"):
            valid = [d for d in actions if d not in ("help", "config")]
            raise UsageError(f"--config {path}: {unknown_message('key', [key], valid)}")
        action = actions[key]
        if value is None or isinstance(value, dict):
            parser.set_defaults(**{key: value})
        elif isinstance(value, list):
            if action.nargs not in ("+", "*"):
                parser.set_defaults(**{key: value})  # e.g. report_to: a list where argparse takes one string
            elif value:
                tokens += [f"--{key}", *map(_yaml_scalar, value)]
        else:
            tokens += [f"--{key}", _yaml_scalar(value)]
    return tokens


def _yaml_scalar(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse(argv: list[str]) -> tuple[TrainScriptArguments, DiPOConfig, ModelConfig]:
    """Parse `--config FILE` plus command-line overrides into the three configs (validated).

    Raises `UsageError` (or `ValueError` from a config's own checks) on any bad input."""
    parser = build_parser()
    argv = _rename_deprecated_flags(normalize_flags(parser._option_string_actions, list(argv)))
    tokens: list[str] = []
    config_path = None
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise UsageError("--config: expected a YAML file")
        config_path = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
        config = load_yaml_config(config_path)
        tokens = _config_tokens(parser, config, config_path)
    try:
        *configs, extras = parser.parse_args_into_dataclasses(args=tokens + argv, return_remaining_strings=True)
    except UsageError as exc:
        raise UsageError(f"{exc}{f' (command line or {config_path})' if config_path else ''}") from None
    except (ValueError, TypeError) as exc:  # a config's own validation, naming the field
        raise UsageError(" ".join(str(exc).split())) from None
    if extras:
        options = [e.split("=", 1)[0] for e in extras if e.startswith("-")]
        valid = [o for o in parser._option_string_actions if o.startswith("--")]
        raise UsageError(unknown_message("option", options, valid) if options else f"unexpected arguments {extras}")
    script, training, model = (c for c in configs if not isinstance(c, argparse.Namespace))
    if not model.model_name_or_path:
        raise UsageError("no model: pass --model_name_or_path (a model directory, a hub id, or 'testbed'), "
                         "or --config FILE; see dipo train --help")
    return script, training, model


# -- settings, run directory ------------------------------------------------------------------------


def effective_settings(script: TrainScriptArguments, training: DiPOConfig, model: ModelConfig) -> str:
    """The settings a method preset resolved to, plus the ones a reader of a run compares first."""
    preset = sorted(METHOD_PRESETS[training.method])
    lines = [f"method {training.method} (preset fills fields left unset):"]
    lines.append("  " + ", ".join(f"{k}={getattr(training, k)}" for k in preset)
                 + f", epsilon={training.epsilon}, overlong_buffer_length={training.overlong_buffer_length}, "
                   f"overlong_penalty_factor={training.overlong_penalty_factor}, "
                   f"max_refill_rounds={training.max_refill_rounds}")
    core = training.core_config()
    if core.reallocate:
        lines.append(f"DiPO BRR: alpha={core.alpha}, queue_batches={core.queue_batches}, confidence={core.confidence}, "
                     f"group_rule={core.group_rule}, hard_groups={core.hard_groups}, easy_groups={core.easy_groups}, "
                     f"use_psd={core.use_psd}, reward range [{core.r_min}, {core.r_max}]")
    else:
        lines.append("DiPO BRR: off (the PPL queue, split and dipo/* metrics are still computed)")
    if training.method == "cde":
        lines.append(f"CDE bonus: weight={training.cde_weight}, kappa={training.cde_kappa}, a={training.cde_a}")
    lines.append(f"rollouts: num_generations={training.num_generations}, temperature={training.temperature}, "
                 f"top_p={training.top_p}, max_completion_length={training.max_completion_length}, "
                 f"scale_rewards={training.scale_rewards}, beta={training.beta}")
    lines.append(f"optimisation: learning_rate={training.learning_rate}, "
                 f"per_device_train_batch_size={training.per_device_train_batch_size}, "
                 f"gradient_accumulation_steps={training.gradient_accumulation_steps}, max_steps={training.max_steps}")
    lines.append(f"data: dataset_name={script.dataset_name}, reward_funcs={script.reward_funcs}, "
                 f"heldout_dataset={script.heldout_dataset}; model={model.model_name_or_path}")
    return "\n".join(lines)


RUN_FILES = (CONFIG_FILE, METRICS_FILE, ROLLOUTS_DIR, "final")


def run_contents(run_dir: Path) -> list[str]:
    """What a previous run left in `run_dir` (dipo's files and checkpoints), sorted."""
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if p.name in RUN_FILES or re.fullmatch(r"checkpoint-\d+", p.name))


def complete_checkpoints(run_dir: Path, inexact_ok: bool = False) -> tuple[list[Path], list[Path]]:
    """(complete, incomplete) `checkpoint-N` folders, newest first. Complete = the trainer's state and
    DiPO's state were both written (`inexact_ok`: the trainer's state suffices). The trainer checks
    the rest (optimizer, RNG) when it resumes (`checkpoints.resume_gaps`)."""
    from dipo.engines.trl.checkpoints import STATE_FILE

    found = sorted((p for p in run_dir.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name) and p.is_dir()),
                   key=lambda p: int(p.name.split("-")[1]), reverse=True)
    ok = [p for p in found if (p / "trainer_state.json").is_file()
          and (inexact_ok or ((p / STATE_FILE).is_file() and (p / STATE_FILE).stat().st_size > 0))]
    return ok, [p for p in found if p not in ok]


def resolve_resume(value: str | None, run_dir: Path, inexact_ok: bool = False) -> str | None:
    """`--resume_from_checkpoint`: 'last'/'true' = newest complete checkpoint in run_dir, a path, or
    None ('false'/'none'/unset). Refuses (UsageError) when there is nothing to resume from."""
    if value is None or str(value).lower() in ("", "none", "null", "false", "no"):
        return None
    if str(value).lower() in ("last", "true", "yes"):
        ok, skipped = complete_checkpoints(run_dir, inexact_ok) if run_dir.is_dir() else ([], [])
        for path in skipped:
            if not ok or int(path.name.split("-")[1]) > int(ok[0].name.split("-")[1]):
                print(f"dipo train: skipping incomplete checkpoint {path} (an interrupted save)", file=sys.stderr)
        if not ok:
            raise UsageError(f"--resume_from_checkpoint {value}: no checkpoint found in {run_dir} "
                             f"(complete checkpoints only)")
        return str(ok[0])
    path = Path(value)
    if not path.is_dir():
        raise UsageError(f"--resume_from_checkpoint {value}: no such checkpoint directory")
    if not (path / "trainer_state.json").is_file():
        raise UsageError(f"--resume_from_checkpoint {value}: not a complete checkpoint (no trainer_state.json)")
    return str(path)


def check_run_dir(run_dir: Path, resuming: bool, overwrite: bool) -> None:
    """Refuse an output_dir that is a file, or that holds a run we are neither resuming nor replacing."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--output_dir {run_dir}: is a file, not a directory")
    previous = run_contents(run_dir)
    if previous and not (resuming or overwrite):
        raise UsageError(f"--output_dir {run_dir} already holds a run ({', '.join(previous[:4])}"
                         f"{', ...' if len(previous) > 4 else ''}); pass --resume_from_checkpoint last to continue "
                         "it, --overwrite_output_dir to replace it, or another --output_dir")


def clear_run_dir(run_dir: Path) -> None:
    """Delete a previous run's files (`--overwrite_output_dir`), nothing else in the folder."""
    for name in run_contents(run_dir):
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        print(f"dipo train: --overwrite_output_dir: removed {path}", file=sys.stderr)


class RunLock:
    """An exclusive lock on `output_dir/.dipo.lock` for the life of the process: a second `dipo train`
    into the same directory is refused. The OS drops the lock when the process dies, so a crash
    never leaves a stale lock."""

    def __init__(self, run_dir: Path) -> None:
        import fcntl

        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / ".dipo.lock"
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            owner = self._file.read().strip() or "another process"
            self._file.close()
            raise UsageError(f"--output_dir {run_dir}: in use by another dipo train ({owner})") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()}\n")
        self._file.flush()

    def release(self) -> None:
        self._file.close()


def save_resolved_config(path: Path, script, training, model) -> None:
    """One flat YAML mapping that `dipo train --config` reads back."""
    resolved = {**asdict(script), **training.to_dict(), **asdict(model)}
    # TRL derives generation_batch_size from steps_per_generation and refuses both at once
    resolved = {k: v for k, v in resolved.items() if k in _settable_fields() and k != "generation_batch_size"}
    resolved.pop("dry_run", None)
    resolved.pop("overwrite_output_dir", None)
    resolved.pop("resume_from_checkpoint", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(resolved, sort_keys=True))


def _settable_fields() -> set[str]:
    return {f.name for cls in (TrainScriptArguments, DiPOConfig, ModelConfig) for f in fields(cls) if f.init}


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
