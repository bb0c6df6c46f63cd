"""dipo.engines."""
