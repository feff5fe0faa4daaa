"""Export of ready products to the marketplace PIM: gzip'd JSON Lines parts, a manifest and LATEST.json."""
