"""What each fix of issue #10 changes, measured on synthetic DAPO/DiPO training streams (core only, CPU).

Three measurements, each old behaviour vs the fixed one on the *same* stream:

1. Queue under verl's DiPO-aware group filter: the PPL queue fed only the groups that survive the
   filter (old) vs every finished group of the step (fixed). Reports the share of steps with a valid
   PSD split and BRR firings per step.
2. Queue under TRL's dynamic sampling with refill rounds: one queue batch per generation round (old;
   with ``queue_batches=2`` the window can shrink to the current step's refill rounds) vs one per
   training step (fixed). Reports the samples the split sees and the valid share.
3. Eq. 10 under DAPO's overlong shaping: in groups BRR fires, ``A(R)`` from the shaped reward (old)
   vs ``A(R) = 0`` (fixed). Reports the mean |advantage| there and how often BRR's chosen sample ends
   up with an advantage of the wrong sign (a maximum-PPL *reward* that trains the sample down).

The stream: B prompts x G samples per step; prompt difficulty p ~ Beta(0.35, 0.35) (many all-right
and all-wrong groups, as in DAPO training); log-PPL = 0.6 + prompt offset N(0, 0.25) + 0.2 if wrong +
N(0, 0.2) (PPL separates right from wrong, weakly). Lengths: a share of samples runs into DAPO's
overlong buffer. Seeded; writes benchmarks/results/fidelity.json.

    python benchmarks/fidelity.py [--steps 200] [--prompts 64] [--group 8]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dipo.core import DiPO, DiPOConfig, dynamic_sampling_keep, overlong_penalty


def sample_groups(rng, prompts: int, group: int):
    """One generation round: verifier rewards (0/1), log-PPLs, lengths and group ids."""
    ids = np.repeat(np.arange(prompts), group)
    p = rng.beta(0.35, 0.35, prompts)[ids]
    correct = rng.random(ids.size) < p
    logppl = 0.6 + rng.normal(0, 0.25, prompts)[ids] + np.where(correct, 0.0, 0.2) + rng.normal(0, 0.2, ids.size)
    lengths = np.clip(rng.lognormal(np.log(1500), 0.5, ids.size), 50, 4096).astype(int)
    return correct.astype(np.float32), logppl, lengths, ids


def verl_filter_queue(steps: int, prompts: int, group: int, seed: int) -> dict:
    """Measurement 1: the verl filter path, queue fed kept groups only vs every finished group."""
    out = {}
    for mode in ("kept_only", "all_sampled"):
        rng = np.random.default_rng(seed)
        dipo = DiPO(DiPOConfig())
        valid, fired, queue_sizes = [], [], []
        for _ in range(steps):
            rewards, logppl, _, ids = sample_groups(rng, prompts, group)
            judged = dipo.step(rewards, logppl, ids, push=False)  # the filter judges against the queue as it is
            keep = dynamic_sampling_keep(rewards, ids, judged.realloc.rewards).numpy()
            if mode == "all_sampled":
                dipo.queue.push(logppl[~keep], rewards[~keep] >= 1.0)  # evicted groups open the step's batch
            step = dipo.step(rewards[keep], logppl[keep], ids[keep], new_batch=mode == "kept_only")
            valid.append(step.split.valid)
            fired.append(int(step.realloc.fired.sum()))
            queue_sizes.append(len(dipo.queue))
        out[mode] = {"valid_share": float(np.mean(valid)), "fired_per_step": float(np.mean(fired)),
                     "mean_queue_size": float(np.mean(queue_sizes))}
    return out


def trl_refill_queue(steps: int, prompts: int, group: int, seed: int, max_refill_rounds: int = 3) -> dict:
    """Measurement 2: TRL dynamic sampling; one queue batch per round vs one per training step."""
    out = {}
    for mode in ("batch_per_round", "batch_per_step"):
        rng = np.random.default_rng(seed)
        dipo = DiPO(DiPOConfig(queue_batches=2))
        window: list[int] = []  # training step of each queue batch opened, oldest first
        valid, sizes, rounds_used, steps_seen = [], [], [], []
        for step_index in range(steps):
            kept_groups, rounds = 0, 0
            while rounds == 0 or (kept_groups < prompts and rounds <= max_refill_rounds):
                rewards, logppl, _, ids = sample_groups(rng, prompts, group)
                opens = mode == "batch_per_round" or rounds == 0
                step = dipo.step(rewards, logppl, ids, new_batch=opens)
                if opens:
                    window.append(step_index)
                keep = dynamic_sampling_keep(rewards, ids, step.realloc.rewards).numpy()
                kept_groups += int(keep.sum()) // group
                rounds += 1
            valid.append(step.split.valid)
            sizes.append(len(dipo.queue))
            rounds_used.append(rounds)
            steps_seen.append(len(set(window[-dipo.queue.num_batches:])))  # training steps the split sees
        out[mode] = {"valid_share": float(np.mean(valid)), "mean_queue_size": float(np.mean(sizes)),
                     "min_queue_size": int(np.min(sizes)), "mean_rounds_per_step": float(np.mean(rounds_used)),
                     "mean_training_steps_in_queue": float(np.mean(steps_seen))}
    return out


def shaping_in_fired_groups(steps: int, prompts: int, group: int, seed: int, max_length: int = 4096,
                            buffer_length: int = 1024) -> dict:
    """Measurement 3: advantages inside fired groups with DAPO's overlong penalty in the training reward."""
    out = {}
    for mode, shaped_flat_groups in (("shaped_A_in_flat_groups", True), ("A_zero_in_flat_groups", False)):
        rng = np.random.default_rng(seed)
        dipo = DiPO(DiPOConfig(shaped_flat_groups=shaped_flat_groups))
        adv_abs, wrong_sign, chosen_total, penalised_groups = [], 0, 0, 0
        for _ in range(steps):
            verifier, logppl, lengths, ids = sample_groups(rng, prompts, group)
            shaped = torch.tensor(verifier) + overlong_penalty(lengths, max_length, buffer_length)
            step = dipo.step(shaped, logppl, ids, verifier_rewards=torch.tensor(verifier))
            fired_rows = step.realloc.sample_fired
            if not fired_rows.any():
                continue
            adv = step.advantages.numpy()
            adv_abs.append(np.abs(adv[fired_rows]))
            for g in np.flatnonzero(step.realloc.fired):
                chosen = step.realloc.chosen[g]
                intended = 1.0 if step.realloc.group_kind[g] == "hard" else -1.0  # reward vs penalty
                wrong_sign += int(np.sign(adv[chosen]) != intended)
                chosen_total += 1
                members = step.realloc.group_index == g
                penalised_groups += int((shaped.numpy()[members] < verifier[members]).any())
        all_abs = np.concatenate(adv_abs) if adv_abs else np.zeros(0)
        out[mode] = {"mean_abs_advantage_in_fired_groups": float(all_abs.mean()) if all_abs.size else float("nan"),
                     "max_abs_advantage_in_fired_groups": float(all_abs.max()) if all_abs.size else float("nan"),
                     "fired_groups": chosen_total,
                     "fired_groups_with_an_overlong_sample": penalised_groups,
                     "chosen_sample_wrong_sign_share": wrong_sign / max(chosen_total, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "fidelity.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    results = {
        "settings": vars(args) | {"difficulty": "Beta(0.35, 0.35)", "logppl": "0.6 + N(0,.25)_prompt + .2*wrong + N(0,.2)",
                                  "overlong": "DAPO soft penalty, max 4096, buffer 1024, lengths lognormal(1500, .5)"},
        "verl_filter_queue": verl_filter_queue(args.steps, args.prompts, args.group, args.seed),
        "trl_refill_queue": trl_refill_queue(args.steps, args.prompts, args.group, args.seed),
        "shaping_in_fired_groups": shaping_in_fired_groups(args.steps, args.prompts, args.group, args.seed),
    }
    results["seconds"] = round(time.perf_counter() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
