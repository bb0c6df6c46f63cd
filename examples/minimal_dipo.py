"""DiPO in one file: a plain PyTorch + transformers RLVR loop, no trainer framework.

    python examples/minimal_dipo.py [--steps 30] [--prompts 16] [--group-size 8] [--model DIR]

One training step, as in the paper (arXiv 2604.13902):
  1. sample G completions per prompt at temperature T                       (rollout)
  2. score them with the verifier (math-verify on the \\boxed{} answer)      (reward R, 0/1)
  3. log-PPL of each completion from its per-token log-probs at T           (Eq. 3)
  4. DiPO.step: PPL queue -> PSD threshold + validity -> BRR on extreme groups
     -> advantage A(R) + alpha * A(R_r)                                     (Eqs. 4-10)
  5. DAPO's token-level clipped loss on that advantage (dapo_token_loss)    (Eq. 10)
  6. one AdamW step.
DAPO's dynamic sampling keeps a group when R or R_r varies in it; here dropped groups simply leave the
loss (a production loop samples refill rounds and pushes them with DiPO.step(..., new_batch=False)).
With one optimiser step per batch, the behaviour log-probs are the current ones detached (ratio 1),
exactly as TRL does with num_iterations=1; tests/test_minimal_example.py checks that this loss equals
the TRL engine's (GRPOTrainer._compute_loss, loss_type="dapo") on the same batch.

The default model is the offline CPU testbed (a tiny Qwen3 warm-started on synthetic arithmetic);
the first run builds it into $DIPO_CACHE (about 8 minutes on 2 cores), later runs load it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from dipo.core import DiPO, DiPOConfig, dapo_token_loss, dynamic_sampling_keep, sequence_logppl
from dipo.rewards.maths import math_reward


@dataclass
class Rollout:
    """G completions for each of B prompts, flattened to N = B * G rows (a prompt's rows are adjacent)."""

    prompt_ids: torch.Tensor       # [N, P] left-padded
    prompt_mask: torch.Tensor      # [N, P]
    completion_ids: torch.Tensor   # [N, T] right-padded
    completion_mask: torch.Tensor  # [N, T] 1 up to and including the end-of-turn token
    group_ids: torch.Tensor        # [N] prompt index
    texts: list[str]               # decoded completions


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], group_size: int, max_new_tokens: int,
           temperature: float) -> Rollout:
    """Step 1: sample ``group_size`` completions per prompt (pure temperature sampling: no top-k/top-p,
    so the log-probs at ``temperature`` are the sampling distribution's)."""
    tokenizer.padding_side = "left"
    enc = tokenizer([p for p in prompts for _ in range(group_size)], return_tensors="pt", padding=True)
    out = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                         max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    completion_ids = out[:, enc.input_ids.size(1):]
    is_eos = completion_ids == tokenizer.eos_token_id
    # keep tokens up to the first end-of-turn (inclusive); generate pads finished rows after it
    after_eos = (is_eos.cumsum(1) - is_eos.long()) > 0
    completion_mask = (~after_eos).long()
    texts = tokenizer.batch_decode(completion_ids.masked_fill(after_eos | is_eos, tokenizer.pad_token_id),
                                   skip_special_tokens=True)
    group_ids = torch.arange(len(prompts)).repeat_interleave(group_size)
    return Rollout(enc.input_ids, enc.attention_mask, completion_ids, completion_mask, group_ids, texts)


def completion_logprobs(model, rollout: Rollout, temperature: float) -> torch.Tensor:
    """``[N, T]`` log-probs of the sampled completion tokens under ``model`` at ``temperature``
    (logits / T, as the sampler used them). Differentiable."""
    input_ids = torch.cat([rollout.prompt_ids, rollout.completion_ids], dim=1)
    attention_mask = torch.cat([rollout.prompt_mask, rollout.completion_mask], dim=1)
    n_completion = rollout.completion_ids.size(1)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    logits = logits[:, -n_completion - 1:-1].float() / temperature  # position t predicts token t+1
    return torch.log_softmax(logits, dim=-1).gather(-1, rollout.completion_ids.unsqueeze(-1)).squeeze(-1)


def train(model, tokenizer, rows: list[dict], steps: int, prompts_per_step: int, group_size: int,
          max_new_tokens: int = 80, temperature: float = 1.0, lr: float = 1e-4,
          config: DiPOConfig | None = None, reward_fn=math_reward, log=print) -> list[dict]:
    """The loop. ``rows``: prompts with gold ``answer``s, cycled in order. Returns one dict per step."""
    dipo = DiPO(config or DiPOConfig())  # owns the PPL queue (2 steps by default)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    history = []
    for step in range(steps):
        started = time.perf_counter()
        batch_rows = [rows[(step * prompts_per_step + i) % len(rows)] for i in range(prompts_per_step)]
        model.eval()  # sampling
        rollout = sample(model, tokenizer, [r["prompt"] for r in batch_rows], group_size, max_new_tokens,
                         temperature)
        answers = [r["answer"] for r in batch_rows for _ in range(group_size)]
        rewards = torch.tensor(reward_fn(rollout.texts, answer=answers), dtype=torch.float32)  # step 2
        model.train()
        logprobs = completion_logprobs(model, rollout, temperature)                           # step 3
        logppl = sequence_logppl(logprobs.detach(), rollout.completion_mask)
        out = dipo.step(rewards, logppl, rollout.group_ids)                                   # step 4
        keep = dynamic_sampling_keep(rewards, rollout.group_ids, out.realloc.rewards)
        mask = rollout.completion_mask * keep.unsqueeze(1)
        # step 5; one update per batch, so the behaviour log-probs are the current ones (ratio 1)
        loss, clip_stats = dapo_token_loss(logprobs, logprobs.detach(), out.advantages, mask, 0.2, 0.28)
        optimizer.zero_grad()
        loss.backward()                                                                       # step 6
        optimizer.step()
        record = {"step": step, "accuracy": float(rewards.mean()), "loss": loss.item(),
                  "kept_groups": int(keep.view(prompts_per_step, group_size)[:, 0].sum()),
                  "threshold": out.metrics["dipo/threshold"], "split_valid": bool(out.split.valid),
                  "fired_hard": int(out.metrics["dipo/fired_hard"]),
                  "fired_easy": int(out.metrics["dipo/fired_easy"]),
                  "seconds": time.perf_counter() - started, **clip_stats}
        history.append(record)
        log(f"step {step:3d}  acc {record['accuracy']:.3f}  loss {record['loss']:+.4f}  "
            f"kept {record['kept_groups']}/{prompts_per_step}  tau* {record['threshold']:.3f} "
            f"valid {record['split_valid']!s:5}  "
            f"BRR fired hard {record['fired_hard']} easy {record['fired_easy']}  "
            f"({record['seconds']:.1f} s)")
    return history


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="HF model directory (default: the testbed model, built on first use)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--prompts", type=int, default=16, help="prompts per step (B)")
    parser.add_argument("--group-size", type=int, default=8, help="completions per prompt (G)")
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--alpha", type=float, default=0.1, help="weight of the reallocated advantage")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6],
                        help="testbed task levels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from dipo.testbed import build_testbed, make_math_tasks

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # fastest for a tiny model on a shared CPU
    model_dir = args.model or build_testbed()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = make_math_tasks(args.steps * args.prompts, seed=args.seed, levels=args.levels)
    return train(model, tokenizer, rows, args.steps, args.prompts, args.group_size, args.max_new_tokens,
                 args.temperature, args.lr, DiPOConfig(alpha=args.alpha))


if __name__ == "__main__":
    main()
