"""dipo.engines.verl."""
