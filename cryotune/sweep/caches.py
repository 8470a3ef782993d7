"""The tile caches of a sweep's pairs, decoded by the driver before its trials start.

On one machine the trials would decode them anyway (the first trial of a dataset builds its
cache while the others wait on its lock), but inside Ray workers, where the user sees neither
progress nor an end. Decoded here, each split shows a progress bar with counts and ETA, and
every trial finds its cache built. A dataset whose files cannot be decoded is left to its
trials: they fail with the offending file named, and the other pairs go on. Trials of a joined
cluster (``--address``) decode on their own nodes as before.
"""

from __future__ import annotations

from cryotune.errors import DataError
from cryotune.sweep.plan import SweepPlan


def build_caches(plan: SweepPlan) -> list[str]:
    """Open (building where missing) the tile cache every pair's trials will read; returns the
    pairs whose data could not be decoded (their trials will say why)."""
    from cryotune.data.bands import map_bands
    from cryotune.data.datasets import get_dataset
    from cryotune.data.roots import resolve_root
    from cryotune.models.encoders import get_encoder_spec
    from cryotune.train.trainer import open_splits

    opened: dict[tuple, bool] = {}
    failed = []
    for pair in plan.pairs:
        config = pair.trial_config({})
        encoder = get_encoder_spec(pair.model)
        mapping = map_bands(get_dataset(pair.dataset), encoder.bands, encoder.key, config.view)
        root = resolve_root(pair.dataset, config.data_root)
        key = (pair.dataset, str(root), config.cache_dir, mapping.dataset_modalities)
        if key not in opened:
            try:
                open_splits(pair.dataset, str(root), config.cache_dir, mapping.dataset_modalities)
                opened[key] = True
            except DataError:
                opened[key] = False
        if not opened[key]:
            failed.append(pair.key)
    return failed
