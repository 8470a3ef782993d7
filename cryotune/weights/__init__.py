"""`cryotune weights`: where each checkpoint officially comes from, what is in the weights folder
and fetching what is missing, verified, before a sweep spends GPU time (docs/weights.md)."""
