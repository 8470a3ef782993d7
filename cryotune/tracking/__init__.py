"""MLflow tracking of sweeps: one experiment per sweep, runs nested sweep -> pair -> trial.

Every logging call goes through a run's outbox (``outbox``), so a tracking server that goes
away costs nothing but delay. ``names`` holds the layout's tag and artifact names.
"""
