"""Category mapping: the marketplace taxonomy, merchants' categories mapped onto it, readiness and fill-in requests."""
