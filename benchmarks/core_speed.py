"""Speed of one full DiPO core step vs the plain DAPO advantage on the same batch.

A DiPO step = queue push + PSD split over the queue (2 batches) + BRR + combined advantage.
The baseline = DAPO/GRPO group advantage only (`group_advantages`). Sizes: 512 x 16 (the paper's
batch) and 65,536 x 16 (a large-cluster batch). Prints samples/s and the ratio, and checks the
O(n log n) scaling by comparing per-sample cost across sizes. Also times PSD on the queue's sorted
history against re-sorting the whole queue (the former path) and checks both give the same split.
Best of `--repeats`, wall clock and CPU time of this process (the machine may be shared: its load
average is saved too, and CPU time excludes the time spent waiting for a core).
Writes benchmarks/results/core_speed.json.

    python benchmarks/core_speed.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from dipo.core import DiPO, DiPOConfig, group_advantages, split_perplexity_space


def make_batch(prompts: int, group_size: int, seed: int):
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(prompts), group_size)
    p = rng.choice([0.0, 0.3, 0.7, 1.0], size=prompts)[ids]
    rewards = torch.tensor((rng.random(ids.size) < p).astype(np.float32))
    logppl = torch.tensor(rng.normal(0, 0.3, prompts)[ids] + np.where(rewards.numpy() > 0, 0.3, 0.8))
    return rewards, logppl, torch.tensor(ids)


def best_time(fn, repeats: int) -> float:
    """Best wall-clock time of ``repeats`` calls."""
    return best_times(fn, repeats)[0]


def best_times(fn, repeats: int) -> tuple[float, float]:
    """Best wall-clock and best CPU time (this process, one thread) of ``repeats`` calls. On a shared
    machine the CPU time is the closer measure of one core's speed: it excludes time spent waiting."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(wall), min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "core_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for prompts, g in [(512, 16), (65_536, 16)]:
        n = prompts * g
        batches = [make_batch(prompts, g, s) for s in range(2)]
        dipo = DiPO(DiPOConfig())
        dipo.step(*batches[0])  # fill the queue: the timed step splits over 2 batches, as in training
        rewards, logppl, ids = batches[1]
        t_dipo, cpu_dipo = best_times(lambda d=dipo, b=batches[1]: d.step(*b), args.repeats)
        t_dapo, cpu_dapo = best_times(lambda r=rewards, i=ids: group_advantages(r, i), args.repeats)
        q, conf = dipo.queue, dipo.config.confidence
        sorted_split = split_perplexity_space(*q.sorted(), conf, presorted=True)
        resorted_split = split_perplexity_space(q.logppl, q.correct, conf)
        if sorted_split != resorted_split:
            raise SystemExit(f"PSD on the sorted queue differs from a re-sort: {sorted_split} vs {resorted_split}")
        t_psd = best_time(lambda q=q, c=conf: split_perplexity_space(*q.sorted(), c, presorted=True), args.repeats)
        t_psd_resort = best_time(lambda q=q, c=conf: split_perplexity_space(q.logppl, q.correct, c), args.repeats)
        row = {
            "prompts": prompts, "group_size": g, "samples": n, "queue_samples": len(q),
            "dipo_step_s": t_dipo, "dapo_advantage_s": t_dapo,
            "dipo_samples_per_s": n / t_dipo, "dapo_samples_per_s": n / t_dapo,
            "ratio_dipo_over_dapo": t_dipo / t_dapo,
            "dipo_step_cpu_s": cpu_dipo, "dapo_advantage_cpu_s": cpu_dapo,
            "dipo_samples_per_cpu_s": n / cpu_dipo, "dapo_samples_per_cpu_s": n / cpu_dapo,
            "psd_sorted_queue_s": t_psd, "psd_resorting_queue_s": t_psd_resort,
        }
        results.append(row)
        print(f"{prompts:>6} x {g}: DiPO step {t_dipo * 1e3:8.2f} ms ({n / t_dipo:,.0f} samples/s) | "
              f"DAPO advantage {t_dapo * 1e3:7.2f} ms ({n / t_dapo:,.0f} samples/s) | ratio {t_dipo / t_dapo:.2f}x | "
              f"PSD {t_psd * 1e3:.2f} ms vs {t_psd_resort * 1e3:.2f} ms re-sorting the queue (same split)")
        print(f"{'':>13}CPU time: DiPO step {cpu_dipo * 1e3:8.2f} ms ({n / cpu_dipo:,.0f} samples per CPU-s) | "
              f"DAPO advantage {cpu_dapo * 1e3:7.2f} ms ({n / cpu_dapo:,.0f} samples per CPU-s)")
    small, large = results
    growth = large["samples"] / small["samples"]
    nlogn = growth * np.log(large["samples"] * 2) / np.log(small["samples"] * 2)
    scaling = large["dipo_step_s"] / small["dipo_step_s"]
    print(f"size x{growth:.0f}: DiPO time x{scaling:.1f} (n log n predicts x{nlogn:.1f}, linear x{growth:.0f})")
    out = {"results": results, "time_growth": scaling, "nlogn_growth": nlogn, "size_growth": growth,
           "machine": platform.platform(), "torch_threads": 1, "load_average_1min": os.getloadavg()[0],
           "cpu_count": os.cpu_count()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
