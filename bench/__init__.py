"""Benchmarks: ``python -m bench [NAME ...]`` runs them and writes JSON to bench/results/."""
