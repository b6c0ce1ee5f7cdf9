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


def test_run_step_names_unknown_and_missing_parameters():
    with pytest.raises(ValueError, match=r"devcie: not a parameter of step 'train' \(its parameters: \['lake', "):
        pipeline.run_step("train", lake="x", devcie="cuda")
    with pytest.raises(ValueError, match=r"lake: step 'report' needs it \(lake root\)"):
        pipeline.run_step("report")


def test_main_parses_key_value_pairs(capsys):
    """The options come from the step's params dataclass: a missing value or an unknown key is
    argparse's exit 2; a value of the wrong type or a bad choice is one line on stderr, exit 2."""
    for argv, message in ((["etl", "--lake"], "argument --lake: expected one argument"),
                          (["etl", "--lake", "x", "--raw", "r", "--dss", "d"], "unrecognized arguments: --dss d"),
                          (["train", "--graph-version", "3"], "the following arguments are required: --lake")):
        with pytest.raises(SystemExit) as exc:
            pipeline.main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err
    for argv, message in ((["train", "--lake", "x", "--graph-version", "3", "--mode", "warm"],
                           "mode: expected one of ['incremental', 'full'], got 'warm'"),
                          (["train", "--lake", "x", "--graph_version", "three"],  # --key_name is accepted too
                           "graph_version: expected an int >= 0 or None, got 'three'"),
                          (["gate", "--lake", "x", "--assets", "null", "--run-id", "null"],
                           "assets: expected {asset: version} or a run_id")):
        assert pipeline.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"graphlake pipeline {argv[0]}: error: {message}"), err
