"""dipo.eval."""
