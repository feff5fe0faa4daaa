"""Block 1: the supplier catalog."""
