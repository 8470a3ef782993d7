"""The sweep: per (dataset, model) pair, an Optuna study over learning rate and finetuning depth,
run as trials on a Ray cluster with ASHA early stopping, ending in a best-config record."""
