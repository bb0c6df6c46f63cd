"""`DiPOConfig`: TRL's `GRPOConfig` plus the method switch (grpo | dapo | dipo | cde) and DiPO's knobs.

The DiPO fields (alpha, queue_batches, confidence, ...) are taken from the algorithm core's
`dipo.core.DiPOConfig` with the same defaults and help text, and `core_config()` builds the core
config from them in one place. Method presets fill in only the fields the user left unset (None):

| method | loss_type | epsilon / epsilon_high | overlong shaping | dynamic sampling | BRR |
|--------|-----------|------------------------|------------------|------------------|-----|
| grpo   | grpo      | 0.2 / 0.2              | off              | off              | off |
| dapo   | dapo      | 0.2 / 0.28             | on               | on               | off |
| dipo   | dapo      | 0.2 / 0.28             | on               | on               | on  |
| cde    | dapo      | 0.2 / 0.28             | on               | on               | off (PPL reward bonus instead) |

GRPO's KL term is TRL's `beta` (KL to the reference model, added to the loss; default 0.0 as in TRL,
DAPO and Dr. GRPO). GRPO "as commonly run" (DeepSeekMath) sets `beta: 0.04`; it costs a reference
model forward per batch. CDE (Dai et al. 2025) is its actor-curiosity bonus on +-1 rewards with a
decaying weight (`cde_*` fields); its bonus keeps acting inside verifier-flat groups.

Every method computes the PPL queue, the split and DiPO's metrics, so GRPO/DAPO runs are
monitored the same way. Invalid values raise `ValueError` naming the field, before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from dipo.core.config import DiPOConfig as CoreDiPOConfig
from dipo.core.config import core_field
from dipo.core.shaping import CDE_SCHEDULES
from dipo.eval.generation import PAPER_SAMPLING

METHODS = ("grpo", "dapo", "dipo", "cde")

# Values a method gives to fields left at None. `epsilon_high=None` is TRL's "same as epsilon".
METHOD_PRESETS: dict[str, dict] = {
    "grpo": {"loss_type": "grpo", "epsilon_high": None, "overlong_shaping": False, "dynamic_sampling": False},
    "dapo": {"loss_type": "dapo", "epsilon_high": 0.28, "overlong_shaping": True, "dynamic_sampling": True},
    "dipo": {"loss_type": "dapo", "epsilon_high": 0.28, "overlong_shaping": True, "dynamic_sampling": True},
    "cde": {"loss_type": "dapo", "epsilon_high": 0.28, "overlong_shaping": True, "dynamic_sampling": True},
}

# Core fields the trainer config exposes under the same names. `scale` is not among them: it is
# TRL's `scale_rewards`, and `reallocate` follows from `method`.
CORE_FIELD_NAMES = tuple(n for n in CoreDiPOConfig.field_names() if n not in ("scale", "reallocate"))


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass
class DiPOConfig(GRPOConfig):
    """GRPOConfig + `method` + DiPO (queue, PSD, BRR) + DAPO's overlong shaping and dynamic sampling + CDE."""

    method: str = _help(
        f"Training method, one of {METHODS}. Presets for fields left unset: grpo = plain GRPO (loss_type grpo, "
        "symmetric clip, no shaping, no dynamic sampling); dapo/dipo/cde = token-level loss, clip 0.2/0.28, "
        "overlong shaping, dynamic sampling; dipo adds BRR, cde the perplexity reward bonus. GRPO's KL term: set "
        "beta (e.g. 0.04, DeepSeekMath's GRPO; default 0).",
        "dipo",
    )

    # DiPO (from dipo.core.DiPOConfig)
    alpha: float = core_field("alpha")
    queue_batches: int = core_field("queue_batches")
    confidence: float = core_field("confidence")
    group_rule: str = core_field("group_rule")
    hard_groups: bool = core_field("hard_groups")
    easy_groups: bool = core_field("easy_groups")
    use_psd: bool = core_field("use_psd")
    r_min: float = core_field("r_min")
    r_max: float = core_field("r_max")
    eps: float = core_field("eps")
    shaped_flat_groups: bool = core_field("shaped_flat_groups")
    correctness_reward_funcs: list[str] | None = _help(
        "Reward functions (names or 0-based indices) whose raw rewards, summed, decide correctness: group kinds, "
        "the PPL queue's labels, BRR, dipo/* metrics and held-out accuracy. The other reward functions (format, "
        "length...) enter only the training reward behind A(R). None = the first reward function.",
        None,
    )

    # Method presets: None = take the method's value (module docstring).
    loss_type: str | None = _help(
        "TRL loss aggregation ('grpo', 'dapo' = token-level, 'dr_grpo', 'bnpo', ...). None = method preset.", None
    )
    epsilon_high: float | None = _help(
        "Upper clip epsilon (clip-higher). None = method preset (0.28 for dapo/dipo/cde; = epsilon for grpo).", None
    )
    overlong_shaping: bool | None = _help(
        "DAPO's soft overlong punishment added to the reward: 0 up to max_completion_length - "
        "overlong_buffer_length, then linearly down to -overlong_penalty_factor. None = method preset.",
        None,
    )
    overlong_buffer_length: int | None = _help(
        "Length of the overlong punishment ramp in tokens. None = max_completion_length // 4.", None
    )
    overlong_penalty_factor: float = _help("Penalty at max_completion_length (subtracted from the reward).", 1.0)
    dynamic_sampling: bool | None = _help(
        "DAPO's dynamic sampling: drop groups whose reward has no variance (with DiPO: unless the reallocated "
        "reward varies) and refill the batch with new prompts. None = method preset.",
        None,
    )
    max_refill_rounds: int = _help(
        "Extra generation rounds per batch that dynamic sampling may run; if the batch is still short, it is "
        "filled with dropped (zero-advantage) groups and `dynamic_sampling/filled_groups` says how many.",
        3,
    )
    sampling_seed_per_step: bool = _help(
        "Reseed torch's sampling RNG before every generation round from (seed, step, round, process): the "
        "rollouts of step t draw the same random stream whatever earlier steps consumed (refill rounds, other "
        "lengths), so runs of different methods with one seed share their sampling noise (common random "
        "numbers for paired comparisons). False: TRL's one stream, seeded once. Not used by vLLM.",
        False,
    )

    # CDE's actor-curiosity bonus (method=cde; Dai et al. 2025, Eq. 2): r + w_t * min(|r| / kappa, a * logppl)
    # on CDE's +-1 reward scale (dipo.core.perplexity_bonus), w_t on CDE's schedule (dipo.core.cde_weight).
    cde_weight: float = _help("CDE: initial bonus weight w_0 (on the +-1 reward scale).", 0.1)
    cde_kappa: float = _help("CDE: the bonus is capped at |r| / kappa (r = +-1); kappa > 1 never flips a reward's sign.",
                             2.0)
    cde_a: float = _help("CDE: slope a (the paper's alpha) on the log-perplexity.", 1.0)
    cde_weight_schedule: str = _help(
        "CDE: schedule of w_t over max_steps: 'staircase' (w_0, then 0 after cde_decay_fraction of training; the "
        "best of CDE's Table 2), 'linear', 'cosine' (down to 0), 'constant' (CDE's no-decay ablation).",
        "staircase",
    )
    cde_decay_fraction: float = _help("CDE: share of training with the full weight under the staircase schedule.",
                                      0.5)

    # Run directory
    save_rollouts: bool = _help(
        "Write per-sample rollout records to OUTPUT_DIR/rollouts/step-XXXXXX.parquet.", True
    )
    heldout_eval_steps: int = _help(
        "Every this many steps, evaluate on the held-out set (if the trainer got one) and log eval/accuracy "
        "(mean@k). 0 = off.",
        0,
    )
    allow_inexact_resume: bool = _help(
        "Resume from a checkpoint that lacks state an exact resume needs (dipo_state.pt: PPL queue and refill "
        "position; optimizer, scheduler, RNG, trainer state), with a warning. False (default): refused in one line.",
        False,
    )
    heldout_max_problems: int | None = _help("Evaluate on at most this many held-out problems. None = all.", None)
    # Held-out sampling is the eval protocol's (`dipo eval`'s defaults), never the training sampler's.
    heldout_k: int = _help(f"Samples per held-out problem for mean@k and pass@k (dipo eval: {PAPER_SAMPLING['k']}).",
                           PAPER_SAMPLING["k"])
    heldout_temperature: float = _help(
        "Held-out sampling temperature, 0 = greedy; independent of the training `temperature` "
        f"(dipo eval: {PAPER_SAMPLING['temperature']}).", PAPER_SAMPLING["temperature"])
    heldout_top_p: float = _help(f"Held-out nucleus sampling (dipo eval: {PAPER_SAMPLING['top_p']}).",
                                 PAPER_SAMPLING["top_p"])
    heldout_max_new_tokens: int = _help(
        "Held-out generation limit in tokens, capped to the model's context; independent of "
        f"max_completion_length (dipo eval: {PAPER_SAMPLING['max_new_tokens']}).", PAPER_SAMPLING["max_new_tokens"])

    def __post_init__(self) -> None:
        self._check_and_apply_method()
        super().__post_init__()
        self._check_after_trl()

    # -- validation --------------------------------------------------------------------------------

    def _bad(self, name: str, why: str) -> ValueError:
        return ValueError(f"DiPOConfig.{name}={getattr(self, name)!r}: {why}")

    def _check_and_apply_method(self) -> None:
        if self.method not in METHODS:
            raise self._bad("method", f"unknown method; choose one of {METHODS}")
        if self.num_generations is None or self.num_generations < 2:
            raise self._bad("num_generations", "the group size must be >= 2 (advantages are relative to the group)")
        for name, value in METHOD_PRESETS[self.method].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.core_config()  # validates alpha, queue_batches, confidence, group_rule, ... naming the field
        if self.method == "dipo" and not (self.hard_groups or self.easy_groups):
            raise self._bad("hard_groups", "with easy_groups=False too, BRR never fires; use method=dapo instead")
        if self.max_completion_length is None or self.max_completion_length < 1:
            raise self._bad("max_completion_length", "must be a positive number of tokens")
        if self.overlong_buffer_length is None:
            self.overlong_buffer_length = self.max_completion_length // 4
        if self.overlong_shaping and not 0 < self.overlong_buffer_length < self.max_completion_length:
            raise self._bad("overlong_buffer_length", f"must lie in (0, max_completion_length={self.max_completion_length})")
        if self.overlong_penalty_factor < 0:
            raise self._bad("overlong_penalty_factor", "must be >= 0")
        if self.max_refill_rounds < 0:
            raise self._bad("max_refill_rounds", "must be >= 0")
        if self.method == "cde" and not (self.cde_kappa > 0 and self.cde_weight >= 0):
            raise self._bad("cde_kappa", "CDE needs cde_kappa > 0 and cde_weight >= 0")
        if self.cde_weight_schedule not in CDE_SCHEDULES:
            raise self._bad("cde_weight_schedule", f"must be one of {CDE_SCHEDULES}")
        if not 0.0 <= self.cde_decay_fraction <= 1.0:
            raise self._bad("cde_decay_fraction", "must lie in [0, 1]")
        if self.heldout_eval_steps < 0:
            raise self._bad("heldout_eval_steps", "must be >= 0")
        for name in ("heldout_k", "heldout_max_new_tokens"):
            if getattr(self, name) < 1:
                raise self._bad(name, "must be >= 1")
        if self.heldout_temperature < 0:
            raise self._bad("heldout_temperature", "must be >= 0 (0 = greedy)")
        if not 0 < self.heldout_top_p <= 1:
            raise self._bad("heldout_top_p", "must lie in (0, 1]")
        if self.use_transformers_continuous_batching or getattr(self, "use_transformers_paged", False):
            raise self._bad(
                "use_transformers_continuous_batching",
                "continuous batching returns no sampling log-probs, which PPL needs; use vLLM or plain generation",
            )
        if self.multi_objective_aggregation not in ("sum_then_normalize", "normalize_then_sum"):
            raise self._bad("multi_objective_aggregation", "must be 'sum_then_normalize' or 'normalize_then_sum'")

    def _check_sampling_decoding(self) -> None:
        """PPL needs the log-probs of the sampled tokens of each returned row; decoding that reorders or prunes
        rows (beam search) breaks that, so it is refused here, before any model is loaded."""
        kwargs = self.generation_kwargs or {}
        for key in ("num_beams", "num_beam_groups", "best_of"):
            value = kwargs.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 1:
                raise ValueError(
                    f"DiPOConfig.generation_kwargs[{key!r}]={value}: beam search reorders and prunes the candidate "
                    "rows while it decodes, so the per-token log-probs recorded during generation no longer belong to "
                    "the returned completions, and GRPO/DiPO need sampled groups; remove it (sampling, num_beams=1)")
        if kwargs.get("use_beam_search"):
            raise ValueError("DiPOConfig.generation_kwargs['use_beam_search']=True: vLLM's beam search returns no "
                             "sampling log-probs for the returned rows; remove it (sampling)")

    def _check_after_trl(self) -> None:
        self._check_sampling_decoding()  # after TRL parsed generation_kwargs (a JSON string on the command line)
        # TRL has resolved steps_per_generation by now. Dynamic sampling keeps or drops whole groups on
        # each rank, so every rank's generation batch must hold whole groups.
        local = self.per_device_train_batch_size * self.steps_per_generation
        if self.dynamic_sampling and self.world_size > 1 and local % self.num_generations:
            raise self._bad(
                "dynamic_sampling",
                f"needs per_device_train_batch_size * steps_per_generation ({local}) divisible by "
                f"num_generations ({self.num_generations}) when training on {self.world_size} processes",
            )

    # -- derived -----------------------------------------------------------------------------------

    def core_config(self) -> CoreDiPOConfig:
        """The algorithm core's config: DiPO's fields, TRL's `scale_rewards`, BRR on only for method=dipo.

        For method=cde the curiosity bonus is the method's own signal inside groups whose verifier rewards do
        not vary (an all-wrong group ranked by perplexity), so A(R) is kept there (`shaped_flat_groups`)."""
        scale = {True: "group", False: "none"}.get(self.scale_rewards, self.scale_rewards)
        fields_ = {name: getattr(self, name) for name in CORE_FIELD_NAMES}
        fields_["shaped_flat_groups"] = self.shaped_flat_groups or self.method == "cde"
        return CoreDiPOConfig(**fields_, scale=scale, reallocate=self.method == "dipo")


def check_vllm_server(args: DiPOConfig) -> None:
    """vLLM server mode, checked on every rank before TRL connects: the server's log-probs must be the sampling
    policy's (`check_vllm_server_logprobs`), and the trainer needs CUDA, because TRL 1.16 syncs weights into
    the server with vLLM's NCCL weight-transfer engine (`VLLMClient.init_communicator` refuses other devices)."""
    import torch
    from trl.generation.vllm_client import VLLMClient

    url = args.vllm_server_base_url or f"http://{args.vllm_server_host}:{args.vllm_server_port}"
    client = VLLMClient(base_url=url, connection_timeout=args.vllm_server_timeout)  # waits for the server
    check_vllm_server_logprobs(client.get_server_info()["model_config"].get("logprobs_mode"))
    if args.use_cpu or not torch.cuda.is_available():
        raise ValueError("vllm_mode='server' needs a CUDA trainer: TRL 1.16 syncs weights into the server over "
                         "vLLM's NCCL weight-transfer engine; on CPU use vllm_mode='colocate' (docs/trl.md)")


def check_vllm_server_logprobs(logprobs_mode: str | None) -> None:
    """Refuse a vLLM server whose log-probs are not the sampling policy's (a config error, not a warning).

    DiPO's log-PPL must be taken at the sampling temperature. vLLM reports raw (pre-temperature) log-probs
    unless the server runs with `--logprobs-mode processed_logprobs` (which `trl vllm-serve` sets), so a
    server in another mode would rank samples by the wrong perplexity, silently.
    """
    if logprobs_mode != "processed_logprobs":
        raise ValueError(
            f"vllm_mode='server': the vLLM server runs with --logprobs-mode {logprobs_mode}, so its log-probs ignore "
            "the sampling temperature and DiPO's log-PPL would not be the sampling policy's. Restart it with "
            "`trl vllm-serve ...` or `vllm serve ... --logprobs-mode processed_logprobs`"
        )
