"""DiPO on verl 0.9 (Ray clusters): trainer mixin, DiPO-aware group filter, launcher and plugin.

Lives in its own environment (``pip install 'dipo-rl[verl]'``; verl 0.9 needs transformers < 5.11).
This package's ``__init__`` imports nothing from verl: the plugin module must stay light.

- :mod:`dipo.engines.verl.config`: the ``dipo:`` config section and its checks against verl's settings.
- :mod:`dipo.engines.verl.adapter`: DiPO's ``[N]`` term ``alpha * A(R_r)`` for verl's ``A(R)``, on plain tensors.
- :mod:`dipo.engines.verl.trainer`: ``DiPOTrainerMixin`` and the ``dipo_*`` trainer modes.
- :mod:`dipo.engines.verl.filter`: the DiPO-aware DAPO group filter.
- :mod:`dipo.engines.verl.main`: ``python -m dipo.engines.verl.main`` (Hydra launcher).
- :mod:`dipo.engines.verl.plugin`: the ``verl.plugins`` entry point.
"""
