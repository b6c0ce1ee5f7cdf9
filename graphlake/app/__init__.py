"""The entry points: ``graphlake`` CLI, pipeline steps (the DAG's), demo, pipeline report, the local
cluster harness and the cross-engine table comparison helpers. May import every stage."""
