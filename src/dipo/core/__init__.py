"""dipo.core."""
