"""One partition of a run: score, check and summarise it (what a scoring task does)."""
