"""What every `dipo` subcommand shares: one error path, `--a_b` / `--a-b` spelling, quiet warnings.

- `UsageError`: bad input from the user (file, config value, name, path). `run_cli` prints any
  bad-input error as one line `dipo X: error: ...` on stderr and returns exit code 2; `--debug`
  (anywhere on the command line) prints the traceback as well.
- `ArgumentParser`: argparse that accepts every long option spelled with `_` or `-`
  (`--max_new_tokens` = `--max-new-tokens`, as TRL's parser does) and raises `UsageError` instead
  of printing the usage text; an unknown option names the closest valid one.
- `filter_known_warnings()`: hides third-party deprecation warnings a user cannot act on.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable


class UsageError(Exception):
    """Bad input from the user: shown as one line, exit code 2."""


# Exceptions that mean "bad input" when they reach the top of a subcommand. Everything else is a
# bug in dipo or a library and keeps its traceback.
BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (UsageError, ValueError, OSError)


def _yaml_errors() -> tuple[type[BaseException], ...]:
    try:
        import yaml
    except ImportError:  # pragma: no cover - yaml is a core dependency
        return ()
    return (yaml.YAMLError,)


def one_line(exc: BaseException, limit: int = 600) -> str:
    """The error message on one line of at most ~`limit` characters (an OSError as 'reason: path')."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.strerror}: {exc.filename}"
    else:
        text = str(exc) or type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]} ... [{len(text) - limit} more characters]"


def pop_flag(argv: list[str], flag: str) -> bool:
    """Remove every bare `flag` (not followed by a value) before a `--` separator from argv; True if
    there was one. (`--debug VALUE` is left alone: transformers' TrainingArguments has a `debug` option.)"""
    end = argv.index("--") if "--" in argv else len(argv)
    spellings = {flag, flag.replace("_", "-")}
    found = [i for i in range(end) if argv[i] in spellings and (i + 1 >= end or argv[i + 1].startswith("-"))]
    for i in reversed(found):
        del argv[i]
    return bool(found)


_debug = False  # set while a `run_cli` with --debug runs (the dispatcher's, seen by the subcommand's)


def run_cli(prog: str, main: Callable[[list[str]], int | None], argv: list[str] | None = None) -> int:
    """Run a subcommand's `main(argv)` behind the shared error path (see module docstring)."""
    global _debug
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = pop_flag(argv, "--debug") or _debug
    previous, _debug = _debug, debug
    try:
        return int(main(argv) or 0)
    except BAD_INPUT_ERRORS + _yaml_errors() as exc:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (--debug shows the traceback)"
        print(f"{prog}: error: {one_line(exc)}{hint}", file=sys.stderr)
        return 2
    finally:
        _debug = previous


def normalize_flags(known: Iterable[str], argv: list[str]) -> list[str]:
    """Rewrite `--a-b` / `--a_b` (also `--a-b=value`) to the spelling the parser registered."""
    known = set(known)
    out: list[str] = []
    for i, token in enumerate(argv):
        if token == "--":
            out.extend(argv[i:])
            break
        if token.startswith("--") and len(token) > 2:
            name, eq, value = token.partition("=")
            if name not in known:
                for alt in ("--" + name[2:].replace("-", "_"), "--" + name[2:].replace("_", "-")):
                    if alt in known:
                        name = alt
                        break
            token = name + eq + value
        out.append(token)
    return out


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The closest valid name to a misspelt one (ignoring `-`/`_`), or None."""
    choices = list(choices)
    by_key = {c.lstrip("-").replace("-", "_"): c for c in choices}
    match = difflib.get_close_matches(name.lstrip("-").replace("-", "_"), list(by_key), n=1, cutoff=0.6)
    return by_key[match[0]] if match else None


def unknown_message(kind: str, names: list[str], choices: Iterable[str]) -> str:
    """'unknown option --lerning_rate (did you mean --learning_rate?)'."""
    choices = list(choices)
    parts = []
    for name in names:
        guess = closest(name, choices)
        parts.append(f"{name} (did you mean {guess}?)" if guess else name)
    return f"unknown {kind}{'s' if len(names) > 1 else ''} " + ", ".join(parts)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with `--a_b`/`--a-b` spellings and errors raised as `UsageError`. The flags a parser takes are
    recorded as they are added (`add_argument`, also inside groups), so no argparse internals are read."""

    def __init__(self, *args, **kwargs):
        self.flags: list[str] = []
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        self.flags += [o for o in action.option_strings if o.startswith("--")]
        return action

    def add_argument_group(self, *args, **kwargs):
        group = super().add_argument_group(*args, **kwargs)
        add = group.add_argument

        def add_argument(*names, **options):
            action = add(*names, **options)
            self.flags += [o for o in action.option_strings if o.startswith("--")]
            return action

        group.add_argument = add_argument
        return group

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(normalize_flags(self.flags, args), namespace)

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        options = [a.split("=", 1)[0] for a in extras if a.startswith("-")]
        if options:
            raise UsageError(unknown_message("option", options, self.flags))
        if extras:
            raise UsageError(f"unexpected arguments: {' '.join(extras)}")
        return parsed

    def error(self, message: str):
        raise UsageError(message)


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """List `--debug` in a parser's help (`run_cli` handles it before parsing)."""
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")


# (message regex, category) of warnings third-party libraries raise on every run and a dipo user
# cannot act on; anything else still shows.
KNOWN_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r".*torch_dtype.* is deprecated", FutureWarning),
    (r".*`torch_dtype` is deprecated", UserWarning),
    (r".*TRANSFORMERS_CACHE.*", FutureWarning),
    (r"`gradient_checkpointing` is deprecated", FutureWarning),  # TRL's own default sets it
    (r".*pkg_resources is deprecated.*", UserWarning),
    (r".*Trainer\.tokenizer is now deprecated.*", UserWarning),
    (r".*The attention mask is not set.*", UserWarning),
    (r".*generation flags are not valid.*", UserWarning),
)


def filter_known_warnings() -> None:
    """Hide `KNOWN_WARNINGS` and other libraries' DeprecationWarnings (dipo's own still show)."""
    for pattern, category in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    for module in ("transformers", "trl", "torch", "accelerate", "datasets", "peft", "jieba", "pydantic"):
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)


def check_model_path(model: str, option: str, allow: Iterable[str] = ()) -> None:
    """Refuse a local path that is not a model directory (one line, before anything loads).

    A name that is not a local path (a hub id such as `Qwen/Qwen3-8B`) is left to transformers."""
    from pathlib import Path

    if model in set(allow):
        return
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{option} {model}: is a file, not a model directory")
        if not any((path / name).is_file() for name in ("config.json", "adapter_config.json")):
            raise UsageError(f"{option} {model}: not a model directory (no config.json)")
    elif model.startswith(("/", "./", "../", "~")) or model.count("/") > 1 or model.endswith("/"):
        raise UsageError(f"{option} {model}: no such model directory")


def die_with_parent() -> None:
    """In a worker process: be sent SIGTERM when the process that started it dies (Linux
    ``PR_SET_PDEATHSIG``; elsewhere nothing). A `dipo demo` or learning benchmark killed with its
    workers still training would otherwise leave them running; `dipo train` saves a checkpoint on
    SIGTERM, so nothing is lost. Pass as a process pool's ``initializer``."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
