"""The step registry (graphlake/app/steps.py) reaches everything generated from it: every parameter
of every step is (a) an option of the ``graphlake`` verb the step maps to (unless declared
pipeline-only), (b) a keyword of the DAG's local task and (c) an argument of its spark-submit task,
both with the value of the parameter's declared source; and params -> spark-submit argv -> params
round-trips. No Spark and no DAG run: the DAG is only parsed, in a subprocess (Airflow reads
``AIRFLOW_HOME`` at import), which calls each local task's function with ``run_step`` replaced and
renders each spark-submit task's arguments with Airflow's own Jinja.

    python -m tests.test_steps --home H --conf '{...}'   (the subprocess: one JSON line per DAG mode)

``$GRAPHLAKE_TEST_DAGS_FOLDER`` points the check at a copy of ``airflow_dags/`` (to see it fail on a
DAG that drops a parameter).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from graphlake.app import pipeline
from graphlake.app.cli import build_parser
from graphlake.app.stepkit import dag_params, from_namespace, specs, to_argv
from graphlake.app.steps import STEPS
from graphlake.core.errors import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DS = "2024-01-02"
TIMEOUT_S = {"train": 8 * 3600.0}  # the DAG's TIMEOUTS (default $GRAPHLAKE_TRAIN_TIMEOUT_HOURS)
DEFAULT_TIMEOUT_S = 2 * 3600.0


def sample(spec, name: str):
    """A value of ``spec``'s type that is not its default."""
    if spec.choices is not None:
        return next(c for c in reversed(spec.choices) if c != spec.default)
    return {str: f"{name}-value", int: 5, float: 12.5, bool: spec.default is not True,
            dict: {"item_embeddings": 2, "user_embeddings": 3}}[spec.type]


def xcom(task_id: str) -> dict:
    """The fake result of an upstream task (a key for every ``xcom:`` source)."""
    return {"run_id": f"{task_id}-run", "graph_version": 7, "assets": {"item_embeddings": 2}}


def conf() -> dict:
    """A value for every DAG param, none its default (so a dropped parameter shows)."""
    out = {}
    for step in STEPS.values():
        for s in specs(step.params):
            kind, _, name = s.dag.partition(":")
            if kind == "param":
                out.setdefault(name, sample(s, name))
    return out


def expected(step, mode: str, conf: dict) -> dict:
    """What the DAG must pass for every parameter of ``step``, read off the declaration."""
    spark_tasks = {s.name for s in STEPS.values() if s.spark} if mode == "spark" else set()
    out = {}
    for s in specs(step.params):
        kind, _, rest = s.dag.partition(":")
        if kind == "ds":
            out[s.name] = DS
        elif kind == "timeout":
            out[s.name] = TIMEOUT_S.get(step.name, DEFAULT_TIMEOUT_S)
        elif kind == "param":
            out[s.name] = conf[rest]
        else:
            task, _, key = rest.partition(".")
            out[s.name] = None if task in spark_tasks else xcom(task)[key]
    return out


@pytest.fixture(scope="module")
def dags(tmp_path_factory) -> dict:
    """``{mode: {"params", "tasks": {task_id: {"operator", "kwargs" | "argv"}}}}`` of the parsed DAG,
    without (``local``) and with (``spark``) a Spark connection."""
    home = str(tmp_path_factory.mktemp("airflow-home"))
    folder = os.environ.get("GRAPHLAKE_TEST_DAGS_FOLDER", os.path.join(ROOT, "airflow_dags"))
    proc = subprocess.run([sys.executable, "-m", "tests.test_steps", "--home", home, "--conf", json.dumps(conf()),
                           "--dags-folder", folder],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GRAPHLAKE_RETRIES": "0"})
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(lines) == 2, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n" \
                                                     f"{proc.stderr[-5000:]}"
    return {line["mode"]: line for line in lines}


def test_every_step_parameter_is_an_option_of_its_cli_verb():
    parser = build_parser()
    for step in STEPS.values():
        if step.cli is None:
            continue
        verb = parser
        for word in step.cli:  # the sub-command's parser
            (sub,) = [a for a in verb._actions if isinstance(a, argparse._SubParsersAction)]
            verb = sub.choices[word]
        options = {a.dest: a.option_strings for a in verb._actions}
        for s in specs(step.params):
            if s.pipeline_only:
                assert s.name not in options or s.name == "lake", (step.name, s.name)
            else:
                assert s.name in options, f"graphlake {' '.join(step.cli)} has no option for {step.name}.{s.name}"
                assert s.flag in options[s.name], (step.name, s.name, options[s.name])


def test_cli_flags_users_rely_on_keep_their_names():
    parser = build_parser()
    args = parser.parse_args(["train", "--timeout", "5", "--device", "cuda", "--launcher", "spark", "--epochs", "2",
                              "--launcher-args", "-H h:4", "--backend", "ddp", "--workers", "2"])
    assert (args.timeout_s, args.device, args.launcher, args.epochs, args.workers) == (5.0, "cuda", "spark", 2, 2)
    assert parser.parse_args(["etl", "--raw", "r", "--date", "d1", "--date", "d2"]).ds == ["d1", "d2"]
    assert parser.parse_args(["report", "--date", "d1"]).ds == ["d1"]
    assert parser.parse_args(["assets", "gate", "--asset", "a", "--version", "2", "--config", "c"]).config == "c"
    assert parser.parse_args(["evaluate"]).k == 20


def test_the_dag_runs_one_task_per_step_in_order(dags):
    for mode, dag in dags.items():
        assert list(dag["tasks"]) == list(STEPS), mode
        for name, task in dag["tasks"].items():
            spark = mode == "spark" and STEPS[name].spark
            assert task["operator"] == ("SparkSubmitOperator" if spark else "_PythonDecoratedOperator"), (mode, name)
        # the outputs a downstream DAG can be scheduled on, whichever operator runs the step
        assert {name: task["outlets"] for name, task in dag["tasks"].items() if task["outlets"]} == {
            "etl": ["graphlake.clean.events"], "build_graph": ["graphlake.graph.manifest"],
            "promote": ["graphlake.emb.item_embeddings", "graphlake.emb.user_embeddings",
                        "graphlake.assets.recommendations", "graphlake.assets.similar_items"]}, mode


def test_the_dag_params_are_generated_from_the_steps(dags):
    generated = dag_params(STEPS.values(), {"lake": "l", "raw": "r", "backend": "horovod", "workers": 2})
    assert sorted(dags["local"]["params"]) == sorted(generated) == sorted(conf())
    assert dags["local"]["params"] == conf()  # every param took the run's value (validated by Airflow)


@pytest.mark.parametrize("mode", ["local", "spark"])
def test_every_parameter_reaches_the_local_tasks(dags, mode):
    for name, task in dags[mode]["tasks"].items():
        if "kwargs" not in task:
            continue
        step = STEPS[name]
        assert sorted(task["kwargs"]) == sorted(s.name for s in specs(step.params)), name
        assert task["kwargs"] == expected(step, mode, conf()), name
        step.make(**task["kwargs"])  # and the step accepts them


def test_every_parameter_reaches_the_spark_submit_tasks(dags):
    parser = pipeline.build_parser()
    submitted = {n: t for n, t in dags["spark"]["tasks"].items() if "argv" in t}
    assert sorted(submitted) == sorted(s.name for s in STEPS.values() if s.spark)
    for name, task in submitted.items():
        step = STEPS[name]
        assert task["argv"][0] == name
        flags = task["argv"][1::2]
        assert sorted(flags) == sorted(s.argv_flag for s in specs(step.params)), name
        params = from_namespace(step, parser.parse_args(task["argv"]))
        assert params == step.make(**expected(step, "spark", conf())), name


@pytest.mark.parametrize("name", list(STEPS))
def test_params_round_trip_through_the_spark_submit_argv(name):
    step, parser = STEPS[name], pipeline.build_parser()
    fields = specs(step.params)
    mixed = {s.name: sample(s, s.name) if i % 2 == 0 or s.required else s.default for i, s in enumerate(fields)}
    for values in ({s.name: sample(s, s.name) for s in fields}, mixed):  # mixed: every other one its default
        params = step.make(**values)
        argv = to_argv(params)
        assert from_namespace(step, parser.parse_args([name, *argv])) == params, argv
    tricky = {s.name: "null" if s.type is str and not s.required else "3" for s in specs(step.params)
              if s.type is str and s.choices is None}  # strings that read as JSON stay strings
    params = step.make(**{**{s.name: sample(s, s.name) for s in specs(step.params)}, **tricky})
    assert from_namespace(step, parser.parse_args([name, *to_argv(params)])) == params


def test_params_check_types_and_name_the_parameter():
    with pytest.raises(UsageError, match=r"workers: expected an int >= 1, got 0"):
        STEPS["train"].make(lake="x", workers=0)
    with pytest.raises(UsageError, match=r"epochs: expected an int >= 1 or None, got '2'"):
        STEPS["train"].make(lake="x", epochs="2")
    with pytest.raises(UsageError, match=r"devcie: not a parameter of step 'train'"):
        STEPS["train"].make(lake="x", devcie="cuda")
    with pytest.raises(UsageError, match=r"raw: step 'etl' needs it"):
        STEPS["etl"].make(lake="x")
    with pytest.raises(UsageError, match=r"assets: expected \{asset: version \(an int\)\}"):
        STEPS["promote"].make(lake="x", assets={"item_embeddings": "2"})
    assert STEPS["train"].make(lake="x", timeout_s=60).timeout_s == 60.0


# ------------------------------------------------------------------------------ the subprocess


class _FakeTI:
    def __init__(self, spark_tasks: set):
        self.spark_tasks = spark_tasks

    def xcom_pull(self, task_ids: str):
        return None if task_ids in self.spark_tasks else xcom(task_ids)


def _inspect(dag, run_conf: dict, spark_tasks: set) -> dict:
    """Each task's operator, and the kwargs its function passes to run_step or its rendered argv."""
    import collections
    import copy
    import inspect
    import types

    import graphlake.app.pipeline as pipeline_module

    params = copy.deepcopy(dag.params)
    params.update(run_conf)
    resolved = params.validate()
    calls = []
    pipeline_module.run_step = lambda step, **kwargs: calls.append(kwargs) or {}
    tasks = {}
    for t in dag.tasks:
        out = tasks[t.task_id] = {"operator": type(t).__name__, "outlets": [a.name for a in t.outlets]}
        ti = _FakeTI(spark_tasks)
        if hasattr(t, "application_args"):
            t.render_template_fields({"params": resolved, "ds": DS, "ti": ti, "task": t})  # as before execute()
            out["argv"] = [str(a) for a in t.application_args]
        else:  # the context keys the task's function asks for
            wanted = inspect.signature(t.python_callable).parameters
            context = {"params": resolved, "ds": DS, "ti": ti, "task": t,
                       "outlet_events": collections.defaultdict(types.SimpleNamespace)}
            t.python_callable(**{k: v for k, v in context.items() if k in wanted})
            out["kwargs"] = calls.pop()
    return {"params": dict(resolved), "tasks": tasks}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", required=True)
    parser.add_argument("--conf", required=True)
    parser.add_argument("--dags-folder", dest="dags_folder", default=None)
    args = parser.parse_args(argv)
    from tests.airflow_runner import DAGS_FOLDER, configure

    configure(args.home)
    from airflow.dag_processing.dagbag import DagBag

    for mode in ("local", "spark"):
        if mode == "spark":
            os.environ["GRAPHLAKE_SPARK_CONN_ID"] = "spark_default"
        else:
            os.environ.pop("GRAPHLAKE_SPARK_CONN_ID", None)
        bag = DagBag(dag_folder=args.dags_folder or DAGS_FOLDER)
        if bag.import_errors:
            print(json.dumps({"import_errors": {k: str(v) for k, v in bag.import_errors.items()}}))
            return 1
        spark_tasks = {s.name for s in STEPS.values() if s.spark} if mode == "spark" else set()
        dag = bag.dags["graphlake_daily"]  # get_dag would need the metadata DB
        print(json.dumps({"mode": mode, **_inspect(dag, json.loads(args.conf), spark_tasks)}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
