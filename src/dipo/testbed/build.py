"""The testbed policy: the tiny model warm-started with TRL's `SFTTrainer` on the synthetic tasks.

SFT is stopped early on purpose: the result solves the easy levels almost always and the hard
levels almost never, so RL with G samples per prompt sees easy, normal and hard groups (the
regime DiPO is about). The build is cached on disk under a key derived from every setting:
`$DIPO_CACHE/testbed/<key>` (default `~/.cache/dipo/testbed/<key>`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dipo._cache import cache_dir
from dipo.testbed.model import TinyModelConfig, build_tiny_model

BUILD_VERSION = 4  # bump when the training recipe changes in a way the settings do not capture


@dataclass
class TestbedConfig:
    """Settings of the testbed build; every field is part of the cache key."""

    seed: int = field(default=0, metadata={"help": "seed of the random init, the tasks and SFT"})
    hidden_size: int = field(default=64, metadata={"help": "model width"})
    num_hidden_layers: int = field(default=2, metadata={"help": "transformer blocks"})
    intermediate_size: int = field(default=192, metadata={"help": "MLP width"})
    num_train_tasks: int = field(default=4000, metadata={"help": "SFT examples (maths plus tools)"})
    tool_fraction: float = field(default=0.0, metadata={"help": "share of tool-call tasks in SFT (0 = maths only)"})
    level_weights: tuple[float, ...] = field(
        default=(0.5, 0.3, 0.12, 0.05, 0.03),
        metadata={"help": "share of SFT examples per difficulty level 1-5: mostly easy ones, so the warm start "
                          "masters level 1, partly learns the middle and fails the top (a mixed-competence policy)"})
    guess_rates: tuple[float, ...] = field(
        default=(0.0, 0.6, 0.6, 0.6, 0.6),
        metadata={"help": "share of SFT maths demonstrations per level 1-5 that guess (box the story's last number "
                          "without working) instead of solving: the warm start then guesses on harder problems, "
                          "confidently wrong, and RL can learn to work them out instead"})
    max_steps: int = field(default=1200, metadata={"help": "SFT optimizer steps"})
    batch_size: int = field(default=32, metadata={"help": "SFT batch size"})
    learning_rate: float = field(default=3e-3, metadata={"help": "SFT peak learning rate (cosine decay)"})
    num_threads: int = field(default=1, metadata={"help": "torch CPU threads (1 is fastest on a shared machine)"})

    def __post_init__(self) -> None:
        for name in ("num_train_tasks", "max_steps", "batch_size", "num_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.tool_fraction <= 1.0:
            raise ValueError(f"tool_fraction must be in [0, 1], got {self.tool_fraction}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if len(self.level_weights) != 5 or min(self.level_weights) < 0 or sum(self.level_weights) <= 0:
            raise ValueError(f"level_weights must be 5 non-negative shares (levels 1-5), got {self.level_weights}")
        self.level_weights = tuple(float(w) for w in self.level_weights)
        if len(self.guess_rates) != 5 or not all(0.0 <= r <= 1.0 for r in self.guess_rates):
            raise ValueError(f"guess_rates must be 5 shares in [0, 1] (levels 1-5), got {self.guess_rates}")
        self.guess_rates = tuple(float(r) for r in self.guess_rates)
        self.model_config()  # validates the model sizes

    def model_config(self) -> TinyModelConfig:
        return TinyModelConfig(hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
                               intermediate_size=self.intermediate_size)

    def cache_key(self) -> str:
        """Hash of the settings, the recipe version and the SFT examples themselves (so a change to
        the task generators is a new build, not a stale cache hit)."""
        data = hashlib.sha256(json.dumps(sft_rows(self)).encode()).hexdigest()
        blob = json.dumps({"version": BUILD_VERSION, "sft_data": data, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_root() -> Path:
    """`$DIPO_CACHE/testbed` if DIPO_CACHE is set, else `~/.cache/dipo/testbed` (`dipo._cache.cache_dir`)."""
    return cache_dir() / "testbed"


def sft_rows(config: TestbedConfig) -> list[dict]:
    """The SFT examples: prompt/completion pairs, levels weighted by `level_weights` (maths, plus
    tools if asked), in a fixed order (the trainer shuffles)."""
    from dipo.testbed.tasks import guess_completion, make_math_tasks, make_tool_tasks

    total = sum(config.level_weights)
    # seed + 1: other problems than the RL prompts (`dipo train` draws testbed tasks with seed 0)
    seed = config.seed + 1
    rows = []
    for level, weight in enumerate(config.level_weights, start=1):
        n = round(config.num_train_tasks * weight / total)
        n_tool = round(n * config.tool_fraction)
        if n - n_tool:
            for row in make_math_tasks(n - n_tool, seed=seed, levels=(level,)):
                if _draw("guess", row["prompt"]) < config.guess_rates[level - 1]:
                    row = {**row, "completion": guess_completion(row["prompt"])}
                rows.append(row)
        if n_tool:
            rows += make_tool_tasks(n_tool, seed=seed, levels=(level,))
    return [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]


def _draw(purpose: str, text: str) -> float:
    """A uniform number in [0, 1) fixed by `text` (not by a shared random stream, so changing one
    rate leaves every other row as it was)."""
    return int(hashlib.sha256(f"{purpose}:{text}".encode()).hexdigest()[:12], 16) / 16**12


def sft_warm_start(model_dir: Path, config: TestbedConfig, progress: bool = True) -> None:
    """Fine-tune the model in `model_dir` in place with TRL's SFTTrainer (completion-only loss)."""
    import tempfile

    import datasets
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from dipo._progress import quiet_progress

    torch.set_num_threads(config.num_threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as scratch:
        args = SFTConfig(
            output_dir=scratch, max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate, lr_scheduler_type="cosine", warmup_steps=min(30, config.max_steps // 10),
            weight_decay=0.0, max_length=512, completion_only_loss=True, logging_steps=50, save_strategy="no",
            report_to="none", use_cpu=True, seed=config.seed, data_seed=config.seed, dataloader_num_workers=0,
            disable_tqdm=not progress,
        )
        bars_were_on = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # SFTTrainer's five dataset-preparation bars say nothing to a user
        try:
            trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(sft_rows(config)),
                                 processing_class=tokenizer)
        finally:  # datasets' bars are process-wide: leave them as the caller had them
            if bars_were_on:
                datasets.enable_progress_bars()
        quiet_progress(trainer)  # a bar, not a metric dict every 50 steps
        trainer.train()
    tokenizer.padding_side = "left"  # SFTTrainer switched it to the right; generation wants the left
    trainer.model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)


def build_testbed(config: TestbedConfig | None = None, *, force: bool = False, progress: bool = True,
                  cache_dir: str | Path | None = None) -> Path:
    """Build (or find in the cache) the SFT'd testbed model; return its HF model directory.

    The directory also holds `testbed.json` (settings, cache key, build seconds). A build writes
    to a scratch directory first and renames it, so an interrupted build leaves no half model.
    """
    config = config or TestbedConfig()
    root = Path(cache_dir) if cache_dir else cache_root()
    key = config.cache_key()  # hashes every SFT example: compute it once
    final = root / key
    if (final / "testbed.json").exists() and not force:
        return final
    scratch = root / f".building-{key}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    started = time.perf_counter()
    build_tiny_model(scratch, seed=config.seed, config=config.model_config())
    sft_warm_start(scratch, config, progress=progress)
    info = {"cache_key": key, "settings": asdict(config), "build_seconds": time.perf_counter() - started,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (scratch / "testbed.json").write_text(json.dumps(info, indent=2))
    if final.exists():
        shutil.rmtree(final)
    scratch.rename(final)
    return final
