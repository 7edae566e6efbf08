"""Identity resolution: typed identifier keys, rules against over-merging, and the constrained graph."""
