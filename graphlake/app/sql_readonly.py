"""The read-only guard of ``graphlake sql-server`` (:mod:`graphlake.app.sql_server`): a Spark check rule
that sees the analysed plan of every statement before it runs and refuses every command that is not
read-only; and the functions removed from a served session.

The rule is a Python object behind py4j (``scala.Function1``), injected with
``SparkSessionExtensions.injectCheckRule`` before the served sessions are made: Spark calls
:class:`CheckBuilder` when it builds a session's state, and the returned :class:`ReadOnlyCheck` at the
end of every analysis of that session (statements inside ``EXECUTE IMMEDIATE`` and ``BEGIN ... END``
scripts are analysed, so checked, one by one).

Example:
    >>> building = set()
    >>> spark._jsparkSession.extensions().injectCheckRule(CheckBuilder(building, command_class, identity))
    >>> # every session made from now on refuses INSERT, CREATE, DROP, ... unless identity(session) in building
"""

from __future__ import annotations

import re

from graphlake.core.errors import UsageError

# commands a client may run (by the plan node's class name): they read the catalog or a setting and write nothing
READ_ONLY_COMMAND = re.compile(r"^(Show|Describe|Explain)\w*$|^SetCatalogAndNamespace$|^SetNamespaceCommand$")
REMOVED_FUNCTIONS = ("reflect", "java_method", "try_reflect")  # static Java calls (System.exit, FileUtil.chmod...)


class ReadOnlyCheck:
    """A Spark check rule (``LogicalPlan => Unit``, through py4j) of one session: a command that is not
    read-only raises before it runs, in every session but the one the server is building (its views)."""

    def __init__(self, key: int, building: set, command_class):
        self.key, self.building, self.command_class = key, building, command_class

    def apply(self, plan):
        if self.key in self.building:
            return None
        name = plan.getClass().getSimpleName()
        if not self.command_class.isInstance(plan) or READ_ONLY_COMMAND.match(name):
            return None
        if name == "SetCommand" and not _sets_a_value(plan):
            return None
        raise UsageError(f"graphlake sql-server is read-only: {name} refused (allowed: SELECT / WITH queries, SHOW, "
                         "DESCRIBE, EXPLAIN, USE, SET to read a setting)")

    def toString(self):  # noqa: N802 (a Java method name)
        return f"graphlake read-only check {self.key}"

    class Java:
        implements = ["scala.Function1"]


def _sets_a_value(plan) -> bool:
    kv = plan.kv()  # SET -> None; SET key -> Some((key, None)); SET key=value -> Some((key, Some(value)))
    return bool(kv.isDefined() and kv.get()._2().isDefined())


class CheckBuilder:
    """``SparkSession => check rule`` (through py4j): Spark calls it when it builds a session's state.

    Args:
        building: identities of the sessions being built (their own views are commands): the only ones
            that may run any command. The caller adds and removes them.
        command_class: the JVM class ``org.apache.spark.sql.catalyst.plans.logical.Command``.
        identity: JVM session -> int (``System.identityHashCode``).
    """

    def __init__(self, building: set, command_class, identity):
        self.building, self.command_class, self.identity = building, command_class, identity

    def apply(self, session):
        return ReadOnlyCheck(self.identity(session), self.building, self.command_class)

    def toString(self):  # noqa: N802 (a Java method name)
        return "graphlake read-only check builder"

    class Java:
        implements = ["scala.Function1"]
