"""The tile caches of a sweep's pairs, decoded by the driver before its trials start.

On one machine the trials would decode them anyway (the first trial of a dataset builds its
cache while the others wait on its lock), but inside Ray workers, where the user sees neither
progress nor an end. Decoded here, each split shows a progress bar with counts and ETA, a bad
file stops the sweep before any trial is spent on it, and every trial finds its cache built.
Trials of a joined cluster (``--address``) decode on their own nodes as before.
"""

from __future__ import annotations

from cryotune.sweep.plan import SweepPlan


def build_caches(plan: SweepPlan) -> int:
    """Open (building where missing) the tile cache every pair's trials will read; returns how
    many distinct (dataset, view) caches there are."""
    from cryotune.data.bands import map_bands
    from cryotune.data.datasets import get_dataset
    from cryotune.data.roots import resolve_root
    from cryotune.models.encoders import get_encoder_spec
    from cryotune.train.trainer import open_splits

    opened: set[tuple] = set()
    for pair in plan.pairs:
        config = pair.trial_config({})
        encoder = get_encoder_spec(pair.model)
        mapping = map_bands(get_dataset(pair.dataset), encoder.bands, encoder.key, config.view)
        root = resolve_root(pair.dataset, config.data_root)
        key = (pair.dataset, str(root), config.cache_dir, mapping.dataset_modalities)
        if key not in opened:
            open_splits(pair.dataset, str(root), config.cache_dir, mapping.dataset_modalities)
            opened.add(key)
    return len(opened)
