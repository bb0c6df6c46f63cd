"""verl plugin (entry point group ``verl.plugins``): makes ``trainer.v1.trainer_mode=dipo_sync`` work
in verl's own launcher (``python -m verl.trainer.main_ppo``) too.

verl 0.9 imports every ``verl.plugins`` entry point inside ``import verl`` (``VERL_USE_EXTERNAL_PLUGINS``
= auto | none | names) and only *loads* the named object, it never calls it. So this module acts on
import, and stays light: it imports nothing but the standard library, because it runs in every
process that imports verl (rollout servers, workers). It installs a one-shot import hook; the DiPO
trainer modes are registered (``dipo.engines.verl.trainer``) only in a process that imports verl's V1
trainer package, i.e. the task runner.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys

TRAINER_PACKAGE = "verl.trainer.ppo.v1"
logger = logging.getLogger(__name__)


def _register_trainers() -> None:
    try:
        from dipo.engines.verl.trainer import register_trainers

        register_trainers()
    except Exception as err:  # never break `import verl` for users who do not run DiPO
        logger.warning("dipo verl plugin: could not register the DiPO trainer modes: %r", err)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``_register_trainers`` right after ``verl.trainer.ppo.v1`` has been executed."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TRAINER_PACKAGE:
            return None
        sys.meta_path.remove(self)  # one-shot; also keeps the lookup below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_trainers()

        spec.loader.exec_module = exec_then_register
        return spec


def register() -> None:
    """Idempotent. Registers now if verl's V1 trainer package is loaded, else on its first import."""
    if TRAINER_PACKAGE in sys.modules:
        _register_trainers()
    elif not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


register()
