"""Step-time overhead of the TRL engine: DiPO vs our DAPO, and our DAPO vs plain `trl.GRPOTrainer`.

All three run the testbed recipe (configs/trl/testbed_math_dipo.yaml) on the same tiny model, prompts and seed,
side by side in one process. The learning rate is 0, so every run samples exactly the same tokens
and the comparison measures the machinery, not different completions. Dynamic sampling is off
(its refill rounds are extra generation work by design, not overhead); overlong shaping stays on.
Plain TRL gets the same DAPO settings (token-level loss, clip 0.2/0.28). Each repetition runs the
three back to back in rotating order; a run's time is its median step after warm-up, ratios are
taken within each repetition (same machine load) and the reported ratio is their median.

    python benchmarks/step_overhead.py [--steps 5 --warmup 2 --reps 3]

Targets: DiPO/DAPO <= 1.03, ours/TRL <= 1.05. Prints a table and writes
benchmarks/results/step_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"dipo_over_dapo": 1.03, "ours_over_trl": 1.05}


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


DEVICE_ARGS: list[str] = []  # --cuda: train on the GPU in bf16 instead of the recipe's CPU settings


def recipe(out_dir: Path, model_dir: Path, steps: int, batch: int):
    """The testbed recipe's settings, as a DiPOConfig, for a short timed run."""
    from dipo.engines.trl.cli import parse

    script, args, _ = parse([
        "--config", str(ROOT / "configs" / "trl" / "testbed_math_dipo.yaml"), "--model_name_or_path", str(model_dir),
        "--output_dir", str(out_dir), "--max_steps", str(steps), "--learning_rate", "0",
        "--save_strategy", "no", "--heldout_dataset", "none", "--dynamic_sampling", "false",
        "--save_rollouts", "true", "--disable_tqdm", "true", "--per_device_train_batch_size", str(batch),
        *DEVICE_ARGS,
    ])
    return script, args


def run_one(kind: str, model_dir: Path, dataset, steps: int, batch: int, work: Path) -> list[float]:
    from trl import GRPOConfig, GRPOTrainer

    from dipo.engines.trl import DiPOTrainer
    from dipo.engines.trl.data import reward_functions

    script, args = recipe(work / kind, model_dir, steps, batch)
    rewards = reward_functions(script.rewards)
    timer = StepTimer()
    if kind == "trl":
        keep = {f for f in GRPOConfig.__dataclass_fields__ if GRPOConfig.__dataclass_fields__[f].init}
        trl_args = GRPOConfig(**{k: v for k, v in args.to_dict().items() if k in keep and k not in (
            "logging_dir", "push_to_hub_token", "hub_token", "generation_batch_size")})
        trainer = GRPOTrainer(model=str(model_dir), reward_funcs=rewards, args=trl_args, train_dataset=dataset)
    else:
        args.method = kind
        trainer = DiPOTrainer(model=str(model_dir), reward_funcs=rewards, args=args, train_dataset=dataset)
    trainer.remove_callback(PrinterCallback)  # keep the console to the summary; metrics are still logged
    trainer.add_callback(timer)
    trainer.train()
    return timer.times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="measured steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="steps dropped at the start of each run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (method order rotates)")
    parser.add_argument("--batch", type=int, default=32, help="completions per step (recipe: 32)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model dir (default: the SFT-warm-started testbed model, dipo.testbed.build_testbed)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "step_overhead.json")
    parser.add_argument("--cuda", action="store_true", help="run on the GPU in bf16 (the recipe itself is CPU)")
    opts = parser.parse_args(argv)
    torch.set_num_threads(1)
    if opts.cuda:
        DEVICE_ARGS[:] = ["--use_cpu", "false", "--bf16", "true"]

    from datasets import Dataset

    from dipo.engines.trl.data import load_train

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = opts.model
        if model_dir is None:  # cached after the first build (a few minutes on 2 cores)
            from dipo.testbed import build_testbed

            model_dir = build_testbed()
        script, _ = recipe(work / "probe", model_dir, 1, opts.batch)
        dataset = Dataset.from_list(list(load_train(script)))
        kinds = ["dipo", "dapo", "trl"]
        times: dict[str, list[float]] = {k: [] for k in kinds}
        per_rep: list[dict[str, float]] = []
        for rep in range(opts.reps):
            rep_median = {}
            for kind in kinds[rep % 3:] + kinds[: rep % 3]:
                measured = run_one(kind, model_dir, dataset, opts.warmup + opts.steps, opts.batch, work / str(rep))
                times[kind] += measured[opts.warmup:]
                rep_median[kind] = statistics.median(measured[opts.warmup:])
                print(f"rep {rep} {kind:5s} median step {rep_median[kind]:.3f}s", flush=True)
            per_rep.append(rep_median)

    # Paired within each repetition (the three runs are back to back, so they share the machine's load),
    # then the median over repetitions.
    rep_ratios = {"dipo_over_dapo": [r["dipo"] / r["dapo"] for r in per_rep],
                  "ours_over_trl": [r["dapo"] / r["trl"] for r in per_rep]}
    ratios = {k: statistics.median(v) for k, v in rep_ratios.items()}
    median = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "median_step_seconds": median, "step_seconds": times, "ratios": ratios, "ratios_per_rep": rep_ratios,
        "pooled_ratios": {"dipo_over_dapo": median["dipo"] / median["dapo"],
                          "ours_over_trl": median["dapo"] / median["trl"]},
        "targets": TARGETS,
        "meets_targets": {k: ratios[k] <= TARGETS[k] for k in ratios},
        "settings": {"device": "cuda bf16" if opts.cuda else "cpu fp32", "steps": opts.steps, "warmup": opts.warmup, "reps": opts.reps, "batch": opts.batch,
                     "recipe": "configs/trl/testbed_math_dipo.yaml", "learning_rate": 0, "dynamic_sampling": False},
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads(),
                    "gpu": torch.cuda.get_device_name() if opts.cuda else None},
    }
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=2))
    print(f"\n{'method':8s} median step (s)")
    for k, v in median.items():
        print(f"{k:8s} {v:.3f}")
    for k, v in ratios.items():
        spread = ", ".join(f"{r:.3f}" for r in rep_ratios[k])
        print(f"{k}: {v:.3f} (per repetition {spread}; target <= {TARGETS[k]}) {'OK' if v <= TARGETS[k] else 'MISSED'}")
    print(f"wrote {opts.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
