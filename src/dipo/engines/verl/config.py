"""DiPO's section of a verl config (``dipo:``) and the checks it needs against verl's own settings.

No verl import here: the checks read the composed OmegaConf/dict config by key, so they run (and
fail, naming the field) before Ray, workers or models start.

The ``dipo:`` section's keys and defaults are not written in any YAML file: importing this module stores
them (:meth:`VerlDiPOConfig.defaults`, every field of the dataclass) in Hydra's ConfigStore as the config
group option ``dipo: defaults``, which ``conf/dipo_base.yaml`` puts in its defaults list. So a new field
of :class:`dipo.core.DiPOConfig` is a ``dipo.<field>=value`` override with no verl edit. The launcher
(``dipo.engines.verl.main``) imports this module before Hydra composes; a process that composes
``dipo_base`` without it (verl's own ``main_ppo``) gets no ``dipo:`` keys (the entry is optional), reads
every field at its default, and sets one with ``+dipo.<field>=value``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields

from dipo.core import DiPOConfig
from dipo.core.config import core_field

LOGPROB_SOURCES = ("rollout", "old")
# Group-relative estimators whose advantage is exactly 0 on a zero-variance group, so DiPO's term
# lands only where the paper puts it. Other estimators (GAE, REINFORCE++, ...) have no groups.
SUPPORTED_ESTIMATORS = ("grpo", "grpo_vectorized", "dipo")
DIPO_ESTIMATOR = "dipo"  # algorithm.adv_estimator=dipo: GRPO's A(R) + DiPO's term, in a DiPO trainer mode
ADV_ESTIMATOR_NEEDS_TRAINER = (
    "algorithm.adv_estimator=dipo needs a DiPO trainer mode: set trainer.v1.trainer_mode=dipo_sync (or "
    "dipo_colocate_async / dipo_separate_async), or launch with `python -m dipo.engines.verl.main`, which selects it"
)
DIPO_TRAINER_MODES = {"dipo_sync": "sync", "dipo_colocate_async": "colocate_async",
                      "dipo_separate_async": "separate_async"}


def _help(text: str, **kw):
    return field(metadata={"help": text}, **kw)


@dataclass
class VerlDiPOConfig(DiPOConfig):
    """The ``dipo:`` section: a :class:`dipo.core.DiPOConfig` (every core field, its default and help; ``eps``
    defaults to verl's GRPO epsilon) plus verl wiring. ``scale`` is not a key: it follows verl's
    ``algorithm.norm_adv_by_std_in_grpo`` (:func:`validate_verl_config` passes it). Built once per start
    and handed to ``DiPO`` as it is."""

    eps: float = core_field(
        "eps", default=1e-6, help="Std epsilon of A(R_r); 1e-6 is verl's GRPO epsilon, so DiPO's records match verl's A(R)."
    )
    enable: bool = _help("Run DiPO (False = the DiPO trainer behaves exactly like verl's).", default=True)
    logprob_source: str = _help(
        "Log-probs for log-PPL: 'rollout' (rollout_log_probs from vLLM/SGLang at the sampling temperature, "
        "needs actor_rollout_ref.rollout.calculate_log_probs=true; no extra forward pass) or 'old' "
        "(old_log_probs recomputed by the actor).",
        default="rollout",
    )
    correct_key: str | None = _help(
        "reward_extra_info field holding the verifier's reward (e.g. 'acc' from verl's dapo reward manager, "
        "before overlong shaping); null = use the summed token-level score.",
        default="acc",
    )
    allow_inexact_resume: bool = _help(
        "Resume from a verl checkpoint without DiPO's dipo_state.pt (the PPL queue) with an empty queue and a "
        "warning. False (default): refused in one line, the resume would not be exact.",
        default=False,
    )
    records_dir: str | None = _help(
        "If set, write per-sample rollout records (step-XXXXXX.parquet, the project's run-directory columns) "
        "and metrics.jsonl here.",
        default=None,
    )
    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except ValueError as err:  # re-raise under the verl field path
            raise ValueError(str(err).replace("DiPOConfig.", "dipo.")) from None

        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"dipo.{name}={getattr(self, name)!r}: {why}")

        for name in ("enable", "allow_inexact_resume"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be true or false")
        if self.logprob_source not in LOGPROB_SOURCES:
            raise bad("logprob_source", f"must be one of {LOGPROB_SOURCES}")
        for name in ("correct_key", "records_dir"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise bad(name, "must be a non-empty string or null")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The ``dipo:`` section's keys (every field but ``scale``)."""
        return tuple(f.name for f in fields(cls) if f.name != "scale")

    @classmethod
    def defaults(cls) -> dict:
        """The ``dipo:`` section as composed: every key of :meth:`keys` at its dataclass default."""
        return {f.name: f.default if f.default is not MISSING else f.default_factory()
                for f in fields(cls) if f.name != "scale"}

    @classmethod
    def from_mapping(cls, section: Mapping | None, scale: str = "group") -> VerlDiPOConfig:
        """Build from the ``dipo:`` mapping (OmegaConf or dict); unknown keys are an error."""
        data = dict(section or {})
        unknown = sorted(set(data) - set(cls.keys()))
        if unknown:
            raise ValueError(f"dipo: unknown field(s) {unknown}; known fields: {sorted(cls.keys())}")
        return cls(**data, scale=scale)


HYDRA_GROUP, HYDRA_OPTION = "dipo", "defaults"  # conf/dipo_base.yaml: `- optional dipo: defaults`


def register_hydra_defaults() -> bool:
    """Store the ``dipo:`` section's defaults in Hydra's ConfigStore (group ``dipo``, option ``defaults``,
    package ``dipo``), where ``conf/dipo_base.yaml``'s defaults list finds them. Idempotent; False (nothing
    stored) where Hydra is not installed, as in the main environment."""
    try:
        from hydra.core.config_store import ConfigStore
    except ImportError:
        return False
    ConfigStore.instance().store(group=HYDRA_GROUP, name=HYDRA_OPTION, node=VerlDiPOConfig.defaults())
    return True


register_hydra_defaults()  # on import: the launcher imports this module before Hydra composes


def _get(config, dotted: str, default=None):
    node = config
    for part in dotted.split("."):
        if node is None:
            return default
        try:
            node = node[part] if part in node else None
        except TypeError:
            return default
    return default if node is None else node


def validate_verl_config(config, dipo_aware_filter: bool) -> VerlDiPOConfig:
    """Check a composed verl config for a DiPO run and return its parsed ``dipo:`` section, the run's core
    config (its ``scale`` from ``algorithm.norm_adv_by_std_in_grpo``).

    Args:
        config: the whole composed config (``OmegaConf`` or nested dict) with a ``dipo`` section.
        dipo_aware_filter: whether the replay buffer that will run verl's group filter is DiPO-aware.
    Raises:
        ValueError naming the offending field.
    """
    scale = "group" if _get(config, "algorithm.norm_adv_by_std_in_grpo", True) else "none"
    options = VerlDiPOConfig.from_mapping(_get(config, "dipo", {}), scale=scale)
    estimator = str(_get(config, "algorithm.adv_estimator", ""))
    if options.enable and estimator not in SUPPORTED_ESTIMATORS:
        raise ValueError(
            f"algorithm.adv_estimator={estimator!r}: DiPO needs a group-relative estimator {SUPPORTED_ESTIMATORS} "
            "(BRR acts on zero-variance groups, where these give A(R) = 0)"
        )
    if not _get(config, "trainer.use_v1", True):
        raise ValueError("trainer.use_v1=false: the DiPO trainer extends verl's V1 trainer; set trainer.use_v1=true")
    if options.enable and options.logprob_source == "rollout" and not _get(
        config, "actor_rollout_ref.rollout.calculate_log_probs", False
    ):
        raise ValueError(
            "actor_rollout_ref.rollout.calculate_log_probs=false but dipo.logprob_source='rollout': set it to true "
            "(the rollout engine returns its log-probs for free) or use dipo.logprob_source=old"
        )
    if options.enable and _get(config, "algorithm.filter_groups.enable", False) and not dipo_aware_filter:
        raise ValueError(
            "algorithm.filter_groups.enable=true: verl's DAPO group filter drops the all-right/all-wrong groups that "
            "DiPO learns from. Use the DiPO trainer's DiPO-aware filter (leave trainer.v1.sampler.custom_sampler "
            "unset) or set algorithm.filter_groups.enable=false"
        )
    metric = _get(config, "algorithm.filter_groups.metric", None)
    if (options.enable and options.correct_key and _get(config, "algorithm.filter_groups.enable", False)
            and metric != options.correct_key):
        raise ValueError(
            f"algorithm.filter_groups.metric={metric!r} but dipo.correct_key={options.correct_key!r}: dynamic sampling "
            "must judge groups by the verifier's reward, as DiPO does (a shaped score would keep all-wrong groups "
            f"whose length penalty varies); set algorithm.filter_groups.metric={options.correct_key}"
        )
    return options
