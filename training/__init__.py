"""graphlake.training: the heterogeneous GraphSAGE, its trainer, distributed backends, evaluation,
the no-config recipe, and :class:`graphlake.training.run.TrainRun` (what a run leaves for assets)."""
