"""dipo.data."""
