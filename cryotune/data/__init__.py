"""Cryo-Bench datasets: specs, readers, checks, the tile cache and the torch Dataset on top."""
