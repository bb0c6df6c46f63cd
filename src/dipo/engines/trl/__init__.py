"""dipo.engines.trl."""
