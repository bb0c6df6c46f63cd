"""Configuration of the DiPO algorithm core, as validated dataclasses.

Every field carries its help text in ``metadata["help"]`` (the TRL/HfArgumentParser convention) so
engines can expose the same fields on their command lines. Invalid values raise ``ValueError``
naming the field at construction, before any model is loaded.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields

GROUP_RULES = ("mean", "all", "any")
ADVANTAGE_SCALES = ("group", "batch", "none")


def _help(text: str, **kw):
    return field(metadata={"help": text}, **kw)


@dataclass
class DiPOConfig:
    """DiPO's own knobs (paper §3; defaults are the paper's)."""

    alpha: float = _help(
        "Weight of the reallocated-reward objective: J = J_DAPO(A(R)) + alpha * J_DAPO(A(R_r)) (paper Eq. 10).",
        default=0.1,
    )
    queue_batches: int = _help(
        "PPL queue length in training batches, current batch included (paper Eq. 4).", default=2
    )
    confidence: float = _help(
        "Confidence at which both PSD judgments (EiS mostly right, ErS mostly wrong) must hold: exact test "
        "of the errors tau* saves over one class everywhere, against coin-flip labels independent of PPL "
        "(accepts those at most 1 - confidence of the time; docs/psd.md). If it fails the split is invalid "
        "and BRR does nothing that step.",
        default=0.95,
    )
    group_rule: str = _help(
        "How a group is judged to lie in a perplexity space: 'mean' (group mean log-PPL vs tau*, default; "
        "our interpretation, the paper does not pin it down), 'all' (every sample), 'any' (some sample).",
        default="mean",
    )
    hard_groups: bool = _help(
        "Apply BRR's maximum-PPL reward to all-wrong groups lying in the exploitation space.", default=True
    )
    easy_groups: bool = _help(
        "Apply BRR's maximum-PPL penalty to all-right groups lying in the exploration space.", default=True
    )
    use_psd: bool = _help(
        "Gate BRR with perplexity-space disentangling. False = ablation 'BRR without PSD': every extreme "
        "group is reallocated.",
        default=True,
    )
    reallocate: bool = _help(
        "False turns BRR off but keeps the queue, split and metrics (how GRPO/DAPO runs are monitored).",
        default=True,
    )
    r_min: float = _help("Lowest verifier reward: a group with every reward at r_min is 'hard'.", default=0.0)
    r_max: float = _help("Highest verifier reward: a group with every reward at r_max is 'easy'.", default=1.0)
    scale: str = _help(
        "Advantage normalisation: 'group' (GRPO/DAPO: divide by the group's std), 'batch' (by the batch std), "
        "'none' (mean-centring only, Dr. GRPO).",
        default="group",
    )
    eps: float = _help("Added to the std when normalising advantages.", default=1e-4)
    shaped_flat_groups: bool = _help(
        "Ablation (off by default): keep A(R) computed from the shaped training reward inside groups whose "
        "verifier rewards do not vary. Default False sets A(R) = 0 there, as in Eq. 10: DAPO's dynamic sampling "
        "drops those groups, so only alpha * A(R_r) acts on them and a length penalty cannot leak into BRR's groups.",
        default=False,
    )

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"DiPOConfig.{name}={getattr(self, name)!r}: {why}")

        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha >= 0):
            raise bad("alpha", "must be a finite number >= 0")
        if not isinstance(self.queue_batches, int) or isinstance(self.queue_batches, bool) or self.queue_batches < 1:
            raise bad("queue_batches", "must be an integer >= 1")
        if not (isinstance(self.confidence, (int, float)) and 0.0 < self.confidence < 1.0):
            raise bad("confidence", "must lie strictly between 0 and 1")
        if self.group_rule not in GROUP_RULES:
            raise bad("group_rule", f"must be one of {GROUP_RULES}")
        if self.scale not in ADVANTAGE_SCALES:
            raise bad("scale", f"must be one of {ADVANTAGE_SCALES}")
        for name in ("hard_groups", "easy_groups", "use_psd", "reallocate", "shaped_flat_groups"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be true or false")
        for name in ("r_min", "r_max", "eps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise bad(name, "must be a finite number")
        if not self.r_min < self.r_max:
            raise bad("r_max", f"must be greater than r_min={self.r_min}")
        if self.eps < 0:
            raise bad("eps", "must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def core_field(name: str, *, default=MISSING, help: str | None = None):  # noqa: A002  (HfArgumentParser's key)
    """A dataclass field for an engine's config that exposes core field ``name`` under the same name,
    with the core's default and help text (``default``/``help`` override them where an engine has reason
    to, e.g. verl's GRPO epsilon). Engines declare DiPO's settings this way, never by hand."""
    core = DiPOConfig.__dataclass_fields__[name]
    return field(default=core.default if default is MISSING else default,
                 metadata={"help": core.metadata["help"] if help is None else help})
