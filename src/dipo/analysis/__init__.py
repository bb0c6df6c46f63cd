"""dipo.analysis."""
