"""cryotune: tune learning rate and finetuning depth of geospatial foundation models on Cryo-Bench."""

__version__ = "0.1.0"
