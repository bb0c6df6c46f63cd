"""dipo.rewards."""
