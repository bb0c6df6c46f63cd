"""`dipo train`'s command line: YAML plus flags into three validated dataclasses, as TRL's `TrlParser`.

File values replace the defaults, command-line flags replace the file's: `TrainScriptArguments` (data,
rewards, run control; TRL's script names), `DiPOConfig` (TRL's GRPOConfig + DiPO) and TRL's `ModelConfig`
(model path, dtype, LoRA via peft). YAML values become command-line tokens, so they get the same type
checks and one-line errors as flags. A file may start from another (`base: OTHER.yaml`). Old names
(`DEPRECATED_NAMES`) are accepted with a warning. Both spellings, `--a_b` and `--a-b`, are
HfArgumentParser's own.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml
from transformers import HfArgumentParser
from trl import GRPOConfig, ModelConfig

from dipo._cli_util import UsageError, unknown_message
from dipo.core.config import GROUP_RULES
from dipo.data.registry import DATASET_LOADERS, DatasetOptions, load_plugins
from dipo.engines.trl.config import CORE_FIELD_NAMES, METHOD_PRESETS, METHODS, DiPOConfig
from dipo.rewards.registry import REWARD_FUNCTIONS, reward_target

REWARD_NAMES = tuple(REWARD_FUNCTIONS)  # built-in reward names; dotted import paths work too

load_plugins()  # the testbed's names, for the help text
DATASET_HELP = (
    f"Training prompts: a registered dataset ({', '.join(DATASET_LOADERS)}; 'testbed:' ones are synthetic and "
    "offline, 'labels:PATH' classification rows), a short name of the data directory (e.g. 'math500'), a local "
    ".jsonl/.json/.parquet file, a Hugging Face dataset id (network), or a name your code registered with "
    "dipo.data.register_dataset."
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
class TrainScriptArguments(DatasetOptions):
    """Data, rewards and run control for `dipo train` (model and LoRA are TRL's ModelConfig): the dataset
    registry's `DatasetOptions` (each loader setting declared once, there) plus the fields below.

    Names follow TRL's `ScriptArguments` / `trl grpo` (`dataset_name`, `dataset_config`,
    `dataset_train_split`, `dataset_test_split`, `reward_funcs`)."""

    dataset_name: str = field(default="testbed:math", metadata={"help": DATASET_HELP})
    dataset_train_split: str = field(default="train", metadata={"help": "Split used for training."})
    dataset_test_split: str = field(default="test", metadata={"help": "Split of the held-out dataset."})
    max_train_examples: int | None = field(default=None, metadata={"help": "Use at most this many training rows."})
    heldout_dataset: str | None = field(
        default=None,
        metadata={"help": "Held-out problems for the periodic mean@k eval/accuracy (same forms as dataset_name; "
                          "DiPO's generation eval, separate from TRL's eval_dataset loop)."},
    )
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
        super().__post_init__()
        if not self.reward_funcs:
            raise ValueError("reward_funcs: empty; name at least one reward function")
        for name in self.reward_funcs:
            reward_target(name)  # the registry's check (closest-name hint), before anything loads

    # Deprecated attribute names (one release), for code that read the old fields.
    @property
    def dataset(self) -> str:
        return self.dataset_name

    @property
    def rewards(self) -> list[str]:
        return self.reward_funcs


# -- parsing ---------------------------------------------------------------------------------------

# --help sections, in order: title, the fields they hold (None = the rest), library fields (first sentence only)
HELP_SECTIONS = (
    ("run", {"config", "help", "debug"}, False),
    ("DiPO and method presets (DiPOConfig)", set(vars(DiPOConfig).get("__annotations__", {})), False),
    ("data, rewards and run directory (dipo train)", {f.name for f in fields(TrainScriptArguments)}, False),
    ("model (TRL ModelConfig)", {f.name for f in fields(ModelConfig)}, True),
    ("GRPO (TRL GRPOConfig; details: TRL docs)", set(vars(GRPOConfig).get("__annotations__", {})), True),
    ("training (transformers TrainingArguments; details: transformers docs)", None, True),
)


class TrainArgumentParser(HfArgumentParser):
    """HfArgumentParser for `dipo train`: errors raise `UsageError`; each field goes to its --help section
    as HfArgumentParser adds it (`add_argument`), so no argparse internals are edited afterwards."""

    def __init__(self) -> None:
        self.sections: dict[str, argparse._ArgumentGroup] = {}
        self.field_actions: dict[str, argparse.Action] = {}  # dest -> its (first) action
        self.flags: list[str] = []
        super().__init__(
            (TrainScriptArguments, DiPOConfig, ModelConfig), prog="dipo train",
            usage="dipo train --config FILE [--field value ...]   (every --field_name also as --field-name)",
            description=DESCRIPTION, formatter_class=CompactHelpFormatter, add_help=False,
        )
        self.add_argument("--config", metavar="FILE", help="YAML file of field: value pairs (see configs/); "
                                                          "command-line flags override it")
        self.add_argument("-h", "--help", action="help", help="show this help and exit")

    def add_argument(self, *names, **kwargs):
        if not self.sections:  # created before the first field, so they show in HELP_SECTIONS' order
            self.sections = {title: self.add_argument_group(title) for title, _, _ in HELP_SECTIONS}
        dest = kwargs.get("dest") or names[-1].lstrip("-").replace("-", "_")
        if names[0].startswith("--no_"):
            kwargs["help"] = argparse.SUPPRESS  # `--field false` says the same
        elif dest == "debug":  # transformers' debug option; a bare --debug is dipo's (run_cli)
            kwargs.update(help="bare --debug: on an error, show the full traceback; --debug OPTION: transformers' "
                               "debug modes (underflow_overflow, tpu_metrics_debug)", metavar="[OPTION ...]")
        elif dest in FIELD_CHOICES:  # shown only: the config's own check names the field
            kwargs["metavar"] = "{" + ",".join(FIELD_CHOICES[dest]) + "}"
        elif dest == "bf16" and not _cuda():
            kwargs["default"] = False  # TRL defaults bf16 on, which a CPU-only machine refuses
        title, _, library = next(s for s in HELP_SECTIONS if s[1] is None or dest in s[1])
        action = self.sections[title].add_argument(*names, **kwargs)
        action.library_help = library
        self.field_actions.setdefault(action.dest, action)
        self.flags += [o for o in action.option_strings if o.startswith("--")]
        return action

    def error(self, message: str):
        raise UsageError(message)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_parser() -> TrainArgumentParser:
    return TrainArgumentParser()


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
        if getattr(action, "library_help", False):
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
    actions = {dest: a for dest, a in parser.field_actions.items() if dest not in ("config", "help")}
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
        if key not in actions:
            raise UsageError(f"--config {path}: {unknown_message('key', [key], actions)}")
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
    argv = _rename_deprecated_flags(list(argv))
    tokens: list[str] = []
    config_path = None
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise UsageError("--config: expected a YAML file")
        config_path = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
        tokens = _config_tokens(parser, load_yaml_config(config_path), config_path)
    try:
        *configs, extras = parser.parse_args_into_dataclasses(args=tokens + argv, return_remaining_strings=True)
    except UsageError as exc:
        raise UsageError(f"{exc}{f' (command line or {config_path})' if config_path else ''}") from None
    except (ValueError, TypeError) as exc:  # a config's own validation, naming the field
        raise UsageError(" ".join(str(exc).split())) from None
    if extras:
        options = [e.split("=", 1)[0] for e in extras if e.startswith("-")]
        raise UsageError(unknown_message("option", options, parser.flags) if options
                         else f"unexpected arguments {extras}")
    script, training, model = (c for c in configs if not isinstance(c, argparse.Namespace))
    if not model.model_name_or_path:
        raise UsageError("no model: pass --model_name_or_path (a model directory, a hub id, or 'testbed'), "
                         "or --config FILE; see dipo train --help")
    return script, training, model


# -- settings ---------------------------------------------------------------------------------------


def effective_settings(script: TrainScriptArguments, training: DiPOConfig, model: ModelConfig) -> str:
    """The settings a method preset resolved to, plus the ones a reader of a run compares first."""
    preset = sorted(METHOD_PRESETS[training.method])
    lines = [f"method {training.method} (preset fills fields left unset):"]
    lines.append("  " + ", ".join(f"{k}={getattr(training, k)}" for k in preset)
                 + f", epsilon={training.epsilon}, overlong_buffer_length={training.overlong_buffer_length}, "
                   f"overlong_penalty_factor={training.overlong_penalty_factor}, "
                   f"max_refill_rounds={training.max_refill_rounds}")
    core = training.core_config()
    if core.reallocate:  # every core field the trainer config exposes, so a new one shows without an edit here
        lines.append("DiPO BRR: " + ", ".join(f"{name}={getattr(core, name)}" for name in CORE_FIELD_NAMES))
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


