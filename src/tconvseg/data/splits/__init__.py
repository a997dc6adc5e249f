"""Splits by drive / sequence: groups of items, a held-out group, pooled splits, split names and samplers."""
