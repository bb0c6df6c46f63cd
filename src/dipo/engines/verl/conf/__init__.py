"""Hydra configs of the DiPO verl launcher (a package so Hydra can find them as pkg://dipo.engines.verl.conf)."""
