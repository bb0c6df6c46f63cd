"""dipo.testbed."""
