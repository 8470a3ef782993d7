"""One training run (trainer), its metric and sliding-window evaluation, and seed repeats."""
