"""Read run directories: `config.yaml` (the resolved config), `metrics.jsonl` (one JSON object per
logged step) and `rollouts/*.parquet`; group runs that differ only by seed."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dipo.data.run_files import CONFIG_FILE, METRICS_FILE, ROLLOUTS_DIR


@dataclass
class Run:
    """One run: `metrics` (one row per step, lines of the same step merged, sorted by step),
    `rollouts` (one row per sample, all steps; empty if the run wrote none) and `config` (the
    run's config.yaml; empty if it has none). `label` names its method in figures: the given one,
    else the config's `method`, else the directory name."""

    path: Path
    label: str
    metrics: pd.DataFrame
    rollouts: pd.DataFrame = field(default_factory=pd.DataFrame)
    config: dict = field(default_factory=dict)

    @property
    def seed(self) -> int | None:
        seed = self.config.get("seed")
        return int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one metric, missing values dropped; empty arrays if never logged."""
        if key not in self.metrics:
            return np.array([]), np.array([])
        column = self.metrics[["step", key]].dropna()
        return column["step"].to_numpy(), column[key].to_numpy(dtype=float)

    @cached_property
    def groups(self) -> pd.DataFrame:
        """`group_table` of the rollouts (computed once)."""
        return group_table(self.rollouts)

    def rollout_steps(self) -> np.ndarray:
        return np.array(sorted(self.rollouts["step"].unique())) if len(self.rollouts) else np.array([], dtype=int)


def _read_metrics(path: Path) -> pd.DataFrame:
    rows = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # torn by a process killed mid-write: the rest of the log is good
                warnings.warn(f"{path}:{number}: skipping a torn last line", stacklevel=2)
                continue
            raise ValueError(f"{path}:{number}: not a JSON object ({exc.msg})") from None
        if not isinstance(row, dict) or "step" not in row:
            raise ValueError(f"{path}:{number}: every line needs a 'step'")
        rows.append(row)
    if not rows:
        return pd.DataFrame({"step": pd.Series(dtype=int)})
    frame = pd.DataFrame(rows).apply(pd.to_numeric, errors="coerce")
    # several lines may describe one step (training metrics, then evaluation): merge them
    return frame.groupby("step", as_index=False).last().sort_values("step").reset_index(drop=True)


def _read_rollouts(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("step-*.parquet")) if folder.is_dir() else []
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _read_config(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping of config fields, got {type(config).__name__}")
    return config


def load_run(path: str | Path, label: str | None = None) -> Run:
    """Load a run directory; raise ValueError naming what is missing or malformed."""
    path = Path(path)
    metrics_file = path / METRICS_FILE  # the run-directory schema is the engine kit's
    if not metrics_file.is_file():
        raise ValueError(f"{path}: not a run directory (no metrics.jsonl)")
    config = _read_config(path / CONFIG_FILE)
    return Run(path=path, label=label or str(config.get("method") or path.name), metrics=_read_metrics(metrics_file),
               rollouts=_read_rollouts(path / ROLLOUTS_DIR), config=config)


# config fields that do not change what a run computes, besides its seed: runs differing only in
# these are seeds of one method
SEED_AND_BOOKKEEPING = {"seed", "data_seed", "output_dir", "logging_dir", "run_name", "report_to", "logging_steps",
                        "disable_tqdm", "save_strategy", "save_steps", "save_total_limit", "overwrite_output_dir",
                        "resume_from_checkpoint", "push_to_hub", "hub_model_id", "dataloader_num_workers"}


@dataclass
class RunGroup:
    """Runs of one method (one label, configs equal up to seed and bookkeeping), e.g. several seeds."""

    label: str
    runs: list[Run]

    @property
    def seeds(self) -> list[int | None]:
        return [run.seed for run in self.runs]


def _setting(run: Run) -> tuple:
    """What a run computes, as a hashable config: every field but the seed and bookkeeping."""
    return tuple(sorted((k, repr(v)) for k, v in run.config.items() if k not in SEED_AND_BOOKKEEPING))


def _departures(settings: list[dict], runs: list[int]) -> list[list[str]]:
    """For each setting (with its number of runs), the fields where it departs from the value a
    strict majority of the runs share (every field that varies, where no value has a majority)."""
    varying = sorted(k for k in {k for d in settings for k in d} if len({d.get(k) for d in settings}) > 1)
    usual = {}
    for k in varying:
        votes: dict = {}
        for d, n in zip(settings, runs):
            votes[d.get(k)] = votes.get(d.get(k), 0) + n
        top = max(votes, key=votes.get)
        if votes[top] * 2 > sum(runs):
            usual[k] = top
    return [[k for k in varying if k not in usual or d.get(k) != usual[k]] for d in settings]


def group_runs(runs: list[Run]) -> list[RunGroup]:
    """Group runs by label, in order of first appearance. Runs that share a label but whose configs
    differ in a field other than the seed (and bookkeeping) are split (a band over them would mix
    methods), and each names the fields where it departs from the value most runs share, e.g.
    `dipo` and `dipo (easy_groups=False)`; with no majority, every differing field is named."""
    by_label: dict[str, list[Run]] = {}
    for run in runs:
        by_label.setdefault(run.label, []).append(run)
    groups = []
    for label, members in by_label.items():
        settings: dict[tuple, list[Run]] = {}
        for run in members:
            settings.setdefault(_setting(run), []).append(run)
        departures = _departures([dict(s) for s in settings], [len(same) for same in settings.values()])
        for fields_, same in zip(departures, settings.values()):
            detail = ", ".join(f"{k}={same[0].config.get(k, 'unset')}" for k in fields_)
            groups.append(RunGroup(f"{label} ({detail})" if detail else label, same))
    return groups


def group_table(rollouts: pd.DataFrame) -> pd.DataFrame:
    """One row per sampled group: kind, whether BRR fired, mean log-PPL, accuracy, zero advantage.

    Groups are keyed by (step, group_id), plus the dynamic-sampling `round` when the engine logs it
    (every generated group counts, also those the filter dropped)."""
    if rollouts.empty:
        return pd.DataFrame(columns=["step", "group_id", "group_kind", "fired", "logppl", "accuracy", "zero_adv"])
    keys = ["step", "round", "group_id"] if "round" in rollouts else ["step", "group_id"]
    grouped = rollouts.groupby(keys)
    return pd.DataFrame({
        "group_kind": grouped["group_kind"].first(),
        "fired": grouped["fired"].any(),
        "logppl": grouped["logppl"].mean(),
        "accuracy": grouped["reward"].apply(lambda r: float(np.mean(r > 0.5))),
        "zero_adv": grouped["advantage"].apply(lambda a: bool(np.all(np.abs(a) < 1e-8))),
    }).reset_index()


def auc(steps: np.ndarray, values: np.ndarray) -> float:
    """Area under a curve divided by its step span (the mean value over training); NaN if < 2 points."""
    if len(steps) < 2:
        return float("nan")
    return float(np.trapezoid(values, steps) / (steps[-1] - steps[0]))


def summarize(run: Run) -> dict:
    """Headline numbers of one run for the report and the learning benchmark."""
    groups = run.groups
    steps, acc = run.series("eval/accuracy")
    _, entropy = run.series("entropy")
    _, valid = run.series("dipo/split_valid")
    # count reallocated groups from the records when there are some (logged metrics may be averaged
    # over sampling rounds), else from the metrics; NaN when the run logged neither
    logged = [run.series(k)[1] for k in ("dipo/fired_hard", "dipo/fired_easy") if k in run.metrics]
    fired = float(groups["fired"].sum()) if len(groups) else \
        (sum(v.sum() for v in logged) if logged else float("nan"))
    out = {
        "label": run.label,
        "steps": int(run.metrics["step"].max()) if len(run.metrics) else 0,
        "initial_eval_accuracy": float(acc[0]) if len(acc) and steps[0] == 0 else float("nan"),  # the warm start
        "final_eval_accuracy": float(acc[-1]) if len(acc) else float("nan"),
        "best_eval_accuracy": float(acc.max()) if len(acc) else float("nan"),
        "eval_accuracy_auc": auc(steps, acc),
        "final_entropy": float(entropy[-1]) if len(entropy) else float("nan"),
        "split_valid_fraction": float(valid.mean()) if len(valid) else float("nan"),
        "brr_firings": float(fired),
    }
    for kind in ("easy", "normal", "hard"):
        out[f"frac_{kind}"] = float((groups["group_kind"] == kind).mean()) if len(groups) else float("nan")
    out["eval_accuracy_gain"] = out["final_eval_accuracy"] - out["initial_eval_accuracy"]  # over the warm start
    out["zero_advantage_fraction"] = float(groups["zero_adv"].mean()) if len(groups) else float("nan")
    return out
