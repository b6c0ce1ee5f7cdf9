"""The machinery of the step registry (:mod:`graphlake.app.steps`): a pipeline step is declared once,
as a :class:`Step` with a frozen dataclass of typed parameters, and everything that passes those
parameters is generated from it here:

- checks: :class:`StepParams.__post_init__` checks every field's type, choices and minimum
  (``UsageError`` naming the parameter, what was expected and what arrived);
- ``spark-submit graphlake/app/pipeline.py <step> --key value``: :func:`to_argv` /
  :func:`add_argv_options` / :func:`from_namespace` (values: plain text or JSON, typed by the
  field's annotation; ``null`` is ``None`` for an optional field);
- the ``graphlake`` CLI: :func:`add_cli_options` (the options of the verb the step maps to);
- the Airflow DAG: :func:`dag_params` (the DAG's params), :func:`dag_kwargs` (a local task's
  ``run_step`` kwargs) and :func:`dag_application_args` (a ``SparkSubmitOperator``'s arguments).

Light on purpose: the DAG imports it at parse time (no Spark, torch or job code here).

Example:
    >>> @dataclasses.dataclass(frozen=True)
    ... class EvaluateParams(StepParams):
    ...     lake: str = param(help="lake root")
    ...     k: int = param(20, help="cut-off K", minimum=1)
    >>> to_argv(EvaluateParams(lake="lakehouse", k=10))
    ['--lake', 'lakehouse', '--k', '10']
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import types
import typing
from typing import Any, Callable, Mapping

from graphlake.core.errors import UsageError

MISSING = dataclasses.MISSING
_TYPES = (str, int, float, bool, dict)
_NAMES = {str: "a str", int: "an int", float: "a number", bool: "a bool", dict: "a JSON object"}
_SCHEMA = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object"}


def param(default: Any = MISSING, *, help: str, flag: str | None = None, pipeline_only: bool = False,
          choices: tuple | None = None, minimum: float | None = None, dag: str | None = None,
          cli: dict | None = None) -> Any:
    """A step parameter: a dataclass field with the metadata the generators read.

    Args:
        default: the default (none: the parameter is required).
        help: one line for ``--help``, the DAG param's description and the docs.
        flag: the ``graphlake`` CLI flag when it is not ``--<name with dashes>`` (``--date`` for ``ds``).
        pipeline_only: the CLI verb has no option for it (the pipeline and the DAG still pass it).
        choices: the allowed values (checked; CLI ``choices``, DAG ``enum``).
        minimum: the smallest allowed number (checked; DAG ``minimum``).
        dag: where the DAG takes the value from: ``"ds"`` (the logical date), ``"param:NAME"``
            (DAG param NAME; default ``param:<name>``), ``"xcom:TASK.KEY"`` (key KEY of task
            TASK's result; ``None`` when TASK returned nothing, e.g. a spark-submit task) or
            ``"timeout"`` (the task's execution timeout in seconds).
        cli: extra ``argparse.add_argument`` keywords for the CLI only (``{"action": "append"}``).

    Example:
        >>> workers: int = param(1, help="ranks (ddp / horovod)", minimum=1)
    """
    meta = {"help": help, "flag": flag, "pipeline_only": pipeline_only, "choices": choices, "minimum": minimum,
            "dag": dag, "cli": dict(cli or {})}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One parameter as the generators see it: ``type`` is one of str, int, float, bool, dict."""

    name: str
    type: type
    optional: bool
    default: Any
    help: str
    flag: str
    pipeline_only: bool
    choices: tuple | None
    minimum: float | None
    dag: str
    cli: dict

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def argv_flag(self) -> str:
        """The flag of ``spark-submit graphlake/app/pipeline.py`` (always the name, dashed)."""
        return "--" + self.name.replace("_", "-")

    def expected(self) -> str:
        if self.choices is not None:
            text = f"one of {list(self.choices)}"
        else:
            text = _NAMES[self.type] + (f" >= {self.minimum}" if self.minimum is not None else "")
        return text + (" or None" if self.optional else "")

    def check(self, value: Any) -> Any:
        """``value`` if it fits (an int for a float field comes back as a float), else ``UsageError``."""
        if value is None and self.optional:
            return value
        fits = isinstance(value, self.type) and not (self.type is int and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value, fits = float(value), True
        if fits and self.choices is not None:
            fits = value in self.choices
        if fits and self.minimum is not None:
            fits = value >= self.minimum
        if not fits:
            raise UsageError(f"{self.name}: expected {self.expected()}, got {value!r}")
        return value


def _base_type(cls: type, name: str, hint: Any) -> tuple[type, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _base_type(cls, name, rest[0])[0], True
    base = typing.get_origin(hint) or hint
    if base not in _TYPES:
        raise TypeError(f"{cls.__name__}.{name}: a step parameter is str, int, float, bool or dict (or one of them "
                        f"| None), got {hint!r}")
    return base, False


@functools.cache
def specs(cls: type) -> tuple[ParamSpec, ...]:
    """The :class:`ParamSpec` of every field of the params dataclass ``cls``, in order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name}: declare step parameters with graphlake.app.stepkit.param()")
        base, optional = _base_type(cls, f.name, hints[f.name])
        m = f.metadata
        out.append(ParamSpec(name=f.name, type=base, optional=optional, default=f.default, help=m["help"],
                             flag=m["flag"] or "--" + f.name.replace("_", "-"), pipeline_only=m["pipeline_only"],
                             choices=m["choices"], minimum=m["minimum"], dag=m["dag"] or f"param:{f.name}",
                             cli=m["cli"]))
    return tuple(out)


class StepParams:
    """Base of a step's frozen params dataclass: ``__post_init__`` checks every field (type,
    choices, minimum) against its declaration; subclasses add their own checks after
    ``super().__post_init__()``."""

    def __post_init__(self) -> None:
        for spec in specs(type(self)):
            value = getattr(self, spec.name)
            checked = spec.check(value)
            if checked is not value:
                object.__setattr__(self, spec.name, checked)


@dataclasses.dataclass(frozen=True)
class Step:
    """One pipeline step (one DAG task).

    Args:
        name: the step's name (the DAG's task id, ``run_step``'s first argument).
        params: its frozen params dataclass (a :class:`StepParams`).
        run: ``run(params) -> dict``: the JSON-able result (an XCom); heavy imports inside.
        help: one line.
        cli: the ``graphlake`` verb whose options come from ``params`` (``("graph", "build")``), if any.
        spark: Spark-heavy: the DAG runs it with ``SparkSubmitOperator`` when it has a Spark connection.
    """

    name: str
    params: type
    run: Callable[[Any], dict]
    help: str
    cli: tuple[str, ...] | None = None
    spark: bool = False

    def make(self, **kwargs) -> Any:
        """The params object from keyword arguments (``UsageError`` for an unknown or missing one)."""
        known = [s.name for s in specs(self.params)]
        for name in kwargs:
            if name not in known:
                raise UsageError(f"{name}: not a parameter of step {self.name!r} (its parameters: {known})")
        for s in specs(self.params):
            if s.required and s.name not in kwargs:
                raise UsageError(f"{s.name}: step {self.name!r} needs it ({s.help})")
        return self.params(**kwargs)


# ------------------------------------------------------------------------------ spark-submit argv


def encode(value: Any) -> str:
    """One ``--key value`` value: a str as itself unless it would read back as something else
    (``"3"``, ``"null"``), everything else as JSON."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, sort_keys=True)


def decode(spec: ParamSpec, text: str) -> Any:
    """The value of ``spec`` from its argv text (JSON, or plain text for a str field)."""
    if spec.optional and text == "null":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if spec.type is str and not isinstance(value, str):
        value = text
    if spec.type is bool and text in ("True", "False"):
        value = text == "True"
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, spec.type) or (spec.type is int and isinstance(value, bool)):
        raise UsageError(f"{spec.name}: expected {spec.expected()}, got {text!r}")
    return value


def to_argv(params: Any) -> list[str]:
    """``["--key", "value", ...]`` for every field of ``params`` (read back by :func:`from_namespace`)."""
    return [a for s in specs(type(params)) for a in (s.argv_flag, encode(getattr(params, s.name)))]


def add_argv_options(parser: argparse.ArgumentParser, step: Step) -> None:
    """The ``--key value`` options of ``step`` (``--graph-version`` or ``--graph_version``), as text;
    absent ones keep the dataclass default."""
    for s in specs(step.params):
        names = dict.fromkeys([s.argv_flag, "--" + s.name])
        parser.add_argument(*names, dest=s.name, default=argparse.SUPPRESS, required=s.required, metavar="VALUE",
                            help=s.help + ("" if s.required else f" (default {s.default!r})"))


def from_namespace(step: Step, namespace: argparse.Namespace) -> Any:
    """The params of ``step`` from a namespace parsed with :func:`add_argv_options` options."""
    given = vars(namespace)
    return step.make(**{s.name: decode(s, given[s.name]) for s in specs(step.params) if s.name in given})


# ------------------------------------------------------------------------------ graphlake CLI


def _json_object(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(text)
    return value


def add_cli_options(parser: argparse.ArgumentParser, step: Step, skip=()) -> list[str]:
    """Add the CLI options of ``step``'s parameters (not the pipeline-only ones, not ``skip``: the
    common options such as ``--lake``) to ``parser``; ``dest`` is the parameter's name. Returns
    the names added."""
    added = []
    for s in specs(step.params):
        if s.pipeline_only or s.name in skip:
            continue
        kw: dict[str, Any] = {"dest": s.name, "help": s.help}
        if s.type is bool:
            kw["action"] = "store_true" if s.default is False else argparse.BooleanOptionalAction
        else:
            kw["type"] = {dict: _json_object}.get(s.type, s.type)
            kw["metavar"] = s.flag.lstrip("-").upper().replace("-", "_")  # --timeout TIMEOUT, not TIMEOUT_S
        if s.choices is not None:
            kw["choices"] = list(s.choices)
            kw.pop("metavar", None)
        if s.required:
            kw["required"] = True
        else:
            kw["default"] = s.default
        parser.add_argument(s.flag, **{**kw, **s.cli})
        added.append(s.name)
    return added


# ------------------------------------------------------------------------------ Airflow DAG


def _source(spec: ParamSpec) -> tuple[str, str]:
    kind, _, rest = spec.dag.partition(":")
    if kind in ("ds", "timeout") and not rest or kind == "param" and rest or kind == "xcom" and "." in rest:
        return kind, rest
    raise ValueError(f"{spec.name}: dag source must be 'ds', 'timeout', 'param:NAME' or 'xcom:TASK.KEY', "
                     f"got {spec.dag!r}")


def dag_params(steps, defaults: Mapping[str, Any]) -> dict[str, dict]:
    """``{DAG param: {"default", "type", "description"[, "enum", "minimum"]}}`` (``airflow.sdk.Param``
    keywords) of every ``param:`` source of ``steps``; ``defaults`` replaces a field's default
    (required fields need one)."""
    out: dict[str, dict] = {}
    for step in steps:
        for s in specs(step.params):
            kind, name = _source(s)
            if kind != "param" or name in out:
                continue
            default = defaults.get(name, s.default)
            if default is MISSING:
                raise ValueError(f"{name}: the DAG param of required parameter {step.name}.{s.name} needs a default")
            spec = {"default": default, "type": ["null", _SCHEMA[s.type]] if s.optional else _SCHEMA[s.type],
                    "description": s.help}
            if s.choices is not None:
                spec["enum"] = list(s.choices) + ([None] if s.optional else [])
            if s.minimum is not None:
                spec["minimum"] = s.minimum
            out[name] = spec
    unknown = sorted(set(defaults) - set(out))
    if unknown:
        raise ValueError(f"defaults: not DAG params of these steps: {unknown}")
    return out


def dag_kwargs(step: Step, params: Mapping[str, Any], ds: str | None, xcom_pull: Callable[..., Any],
               timeout_s: float | None = None) -> dict:
    """The ``run_step`` keyword arguments of ``step`` in a local DAG task: every parameter, from its
    ``dag`` source (``xcom_pull(task_ids=TASK)``: the upstream task's result, or ``None``)."""
    out = {}
    for s in specs(step.params):
        kind, name = _source(s)
        if kind == "ds":
            out[s.name] = ds
        elif kind == "timeout":
            out[s.name] = timeout_s
        elif kind == "param":
            out[s.name] = params[name]
        else:
            task, _, key = name.partition(".")
            out[s.name] = (xcom_pull(task_ids=task) or {}).get(key)
    return out


def dag_application_args(step: Step) -> list[str]:
    """The Jinja-templated ``--key value`` arguments of ``step`` for ``SparkSubmitOperator``: the
    same sources as :func:`dag_kwargs`, every value rendered as JSON (``null`` for ``None``)."""
    out = []
    for s in specs(step.params):
        kind, name = _source(s)
        if kind == "ds":
            expr = "ds"
        elif kind == "timeout":
            expr = "task.execution_timeout.total_seconds() if task.execution_timeout else none"
        elif kind == "param":
            expr = f"params[{name!r}]"
        else:
            task, _, key = name.partition(".")
            expr = f"(ti.xcom_pull(task_ids={task!r}) or {{}}).get({key!r})"
        out += [s.argv_flag, "{{ (" + expr + ") | tojson }}"]
    return out
