"""graphlake.app.pipeline: the orchestrator's entry points reject bad input before touching Spark or the lake."""

from __future__ import annotations

import pytest

from graphlake.app import pipeline


def test_run_step_names_the_known_steps():
    with pytest.raises(ValueError, match=r"step: expected one of \[.*'build_graph'.*\], got 'nope'"):
        pipeline.run_step("nope", lake="x")
    assert list(pipeline.STEPS) == ["etl", "validate_etl", "build_graph", "validate_graph", "train", "evaluate",
                                    "publish", "gate", "promote", "report"]


def test_train_mode_and_gate_targets_are_checked():
    with pytest.raises(ValueError, match=r"mode: expected one of \['incremental', 'full'\], got 'warm'"):
        pipeline.run_step("train", lake="x", graph_version=0, mode="warm")
    with pytest.raises(ValueError, match=r"assets: expected \{asset: version\} or a run_id"):
        pipeline.run_step("gate", lake="x")


def test_main_parses_key_value_pairs(capsys):
    with pytest.raises(SystemExit) as exc:
        pipeline.main(["etl", "--lake"])
    assert exc.value.code == 2 and "expected --key value pairs" in capsys.readouterr().err
    assert pipeline.main(["train", "--lake", "x", "--graph-version", "3", "--mode", "warm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("graphlake pipeline train: error: mode: expected one of"), err
