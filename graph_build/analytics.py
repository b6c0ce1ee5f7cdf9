"""Graph analytics for ``graph/stats``: degree distributions, PageRank, connected components.

The heterogeneous graph is viewed as ONE homogeneous graph over *global ids*: node types are
sorted by name and laid end to end, ``gid = offset[type] + node_id`` (see :func:`global_offsets`).
Example: ``{"user": 3, "item": 2}`` → item 0..1 are gids 0..1, user 0..2 are gids 2..4.

Semantics (fixed here, checked against networkx in ``tests/test_graph_analytics.py``):

* **degree distribution** (:func:`degree_distribution`): per edge type, ``out`` = rows per
  ``src_id``, ``in`` = rows per ``dst_id`` (edge tables hold one row per pair, so this is the number
  of distinct neighbours). Nodes of the type that have no edge of that type count at degree 0.
* **PageRank** (:func:`pagerank`): edges are **undirected** (training samples both directions) and
  **weighted** by ``weight`` (the decayed behaviour strength; ``weighted=False`` gives every row
  weight 1). Parallel edges (the same pair in several edge types or in both directions) add up; a
  self-loop counts once; edges with a null or non-positive weight carry no rank. Nodes without
  edges are dangling: their mass is spread uniformly, as in ``networkx.pagerank(G, alpha=damping,
  weight="weight")`` on the ``nx.Graph`` whose edge weights are those sums. Ranks sum to 1.
* **connected components** (:func:`connected_components`): weakly connected (direction ignored);
  ``component`` = the smallest gid in the component, so an isolated node is its own component.

Engines: when the ``graphframes`` package imports AND its JVM classes are on the classpath
(clusters: ``spark.jars.packages``), connected components and the *unweighted* PageRank run on
GraphFrames (ranks rescaled to sum 1 — GraphX's dangling handling differs slightly from
networkx's —, components relabelled to the min gid). Otherwise — always on the embedded default,
where no Spark 4 GraphFrames JAR exists — Spark DataFrame code runs (which one is logged):
PageRank as power iteration by joins, materialised every :data:`CHECKPOINT_EVERY` iterations
(``checkpoint()`` with a checkpoint directory, else ``localCheckpoint()``) to cut the lineage;
components by large-star / small-star (Kiveris et al. 2014, GraphFrames' algorithm) until the
edge set stops changing. Only scalars reach the driver. Cost: about one Spark job per PageRank
iteration (with at most :data:`BROADCAST_NODES` nodes and at least :data:`BROADCAST_MIN_EDGES`
edges the rank vector is broadcast and the edge list never shuffled); O(log n) rounds of a few
edge shuffles for components.

Example:
    >>> out = graph_stats(spark, {"user": 100, "item": 50}, {"user__click__item": clicks})
    >>> sorted(out)
    ['graph/components', 'graph/node_stats_item', 'graph/node_stats_user', 'graph/stats']
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from functools import reduce
from itertools import accumulate

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from graphlake.core import tables
from graphlake.core.edge_types import parse_edge_type
from graphlake.core.spark import check_session, is_connect
from graphlake.graph_build import schema as G

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- table names and columns
GRAPH_STATS = tables.GRAPH_STATS  # degree distribution
GRAPH_COMPONENTS = "graph/components"  # component size distribution


def node_stats_table(node_type: str) -> str:
    """``graph/node_stats_<type>``."""
    return f"graph/node_stats_{node_type}"


EDGE_TYPE, DIRECTION, DEGREE, NUM_NODES = "edge_type", "direction", "degree", "num_nodes"
NODE_TYPE, PAGERANK, COMPONENT = "node_type", "pagerank", "component"
DEGREE_IN, DEGREE_OUT = "degree_in", "degree_out"
COMPONENT_SIZE, NUM_COMPONENTS = "component_size", "num_components"
OUT, IN = "out", "in"
ENGINES = ("auto", "dataframe", "graphframes")


def _struct(*fields: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(name, dtype, False) for name, dtype in fields])


DEGREE_DIST_SCHEMA = _struct((EDGE_TYPE, T.StringType()), (DIRECTION, T.StringType()), (DEGREE, T.LongType()),
                             (NUM_NODES, T.LongType()))
NODE_STATS_SCHEMA = _struct((G.NODE_ID, T.LongType()), (PAGERANK, T.DoubleType()), (COMPONENT, T.LongType()),
                            (DEGREE_IN, T.LongType()), (DEGREE_OUT, T.LongType()))
COMPONENTS_SCHEMA = _struct((COMPONENT_SIZE, T.LongType()), (NUM_COMPONENTS, T.LongType()))

BROADCAST_NODES = 4_000_000  # PageRank broadcasts the rank vector (16 B/node) up to this many nodes
BROADCAST_MIN_EDGES = 500_000  # ... when the undirected edge list has at least this many rows
CHECKPOINT_EVERY = 5  # PageRank iterations between two materialisations
_GID, _SRC, _DST, _W = "_gl_gid", "_gl_src", "_gl_dst", "_gl_w"
_A, _B, _M = "_gl_a", "_gl_b", "_gl_m"


# ---------------------------------------------------------------- inputs
def _check_inputs(node_counts, edges, need_counts: bool = True) -> None:
    if need_counts or node_counts is not None:
        if not isinstance(node_counts, Mapping):
            raise TypeError(f"node_counts: expected a dict {{node_type: count}}, got {type(node_counts).__name__}")
        for t, n in node_counts.items():
            if not isinstance(t, str) or not t or isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValueError(f"node_counts: expected non-empty type names and ints >= 0, got {t!r}: {n!r}")
    if not isinstance(edges, Mapping):
        raise TypeError(f"edges: expected a dict {{'<src>__<rel>__<dst>': DataFrame}}, got {type(edges).__name__}")
    for name, df in edges.items():
        src, _, dst = parse_edge_type(name, "edges")
        if not isinstance(df, DataFrame):
            raise TypeError(f"edges[{name!r}]: expected a DataFrame, got {type(df).__name__}")
        if missing := {G.SRC_ID, G.DST_ID, G.WEIGHT} - set(df.columns):
            raise ValueError(f"edges[{name!r}]: missing columns {sorted(missing)} (has {df.columns})")
        for t in (src, dst) if node_counts is not None else ():
            if t not in node_counts:
                raise ValueError(f"edges[{name!r}]: node type {t!r} is not in node_counts {sorted(node_counts)}")


def _check_params(iterations, damping) -> None:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations: expected an int >= 1, got {iterations!r}")
    if isinstance(damping, bool) or not isinstance(damping, (int, float)) or not 0.0 < damping < 1.0:
        raise ValueError(f"damping: expected a float in (0, 1), got {damping!r}")


def validate_ids(node_counts: Mapping[str, int], edges: Mapping[str, DataFrame]) -> None:
    """Raise ValueError when an edge has a null id or an id outside ``0..count-1`` of its type.

    One scan of every edge table (a single Spark job; only min/max/null counts reach the driver).
    """
    _check_inputs(node_counts, edges)
    if not edges:
        return
    aggs = [df.agg(F.lit(name).alias("t"), F.min(G.SRC_ID).alias("s0"), F.max(G.SRC_ID).alias("s1"),
                   F.min(G.DST_ID).alias("d0"), F.max(G.DST_ID).alias("d1"),
                   F.sum((F.col(G.SRC_ID).isNull() | F.col(G.DST_ID).isNull()).cast("long")).alias("nulls"))
            for name, df in sorted(edges.items())]
    for r in reduce(DataFrame.unionByName, aggs).collect():
        src, _, dst = parse_edge_type(r["t"])
        if r["nulls"]:
            raise ValueError(f"edges[{r['t']!r}]: {r['nulls']} rows with a null src_id/dst_id")
        for side, t, lo, hi in (("src_id", src, r["s0"], r["s1"]), ("dst_id", dst, r["d0"], r["d1"])):
            if lo is not None and (lo < 0 or hi >= node_counts[t]):
                raise ValueError(f"edges[{r['t']!r}]: {side} range [{lo}, {hi}] is outside 0..{node_counts[t] - 1} "
                                 f"(node_counts[{t!r}] = {node_counts[t]})")


def global_offsets(node_counts: Mapping[str, int]) -> dict[str, int]:
    """Offset of each node type in the global id space (types sorted by name)."""
    types = sorted(node_counts)
    return dict(zip(types, accumulate((node_counts[t] for t in types[:-1]), initial=0)))


def _spark_of(edges: Mapping[str, DataFrame]) -> SparkSession:
    for df in edges.values():
        return df.sparkSession
    spark = SparkSession.getActiveSession()
    if spark is None:
        raise ValueError("edges: empty and no active SparkSession to build the result with")
    return spark


def _materialize(df: DataFrame) -> DataFrame:
    """Compute ``df`` now and cut its lineage (reliable checkpoint when a directory is set; on
    Spark Connect the server's own setting decides, and a local checkpoint is taken)."""
    if not is_connect(df.sparkSession) and df.sparkSession.sparkContext.getCheckpointDir():
        return df.checkpoint(eager=True)
    return df.localCheckpoint(eager=True)


def _global_edges(node_counts, edges, weighted: bool) -> DataFrame | None:
    """Union of all edge tables as directed ``(_SRC, _DST, _W)`` in global ids, or None."""
    offsets = global_offsets(node_counts)
    parts = []
    for name, df in sorted(edges.items()):
        src, _, dst = parse_edge_type(name, "edges")
        w = F.col(G.WEIGHT).cast("double") if weighted else F.lit(1.0)
        parts.append(df.select((F.col(G.SRC_ID) + F.lit(offsets[src])).alias(_SRC),
                               (F.col(G.DST_ID) + F.lit(offsets[dst])).alias(_DST), w.alias(_W)))
    return reduce(DataFrame.unionByName, parts) if parts else None


def _with_type(df: DataFrame, node_counts) -> DataFrame:
    """Add ``node_type`` and ``node_id`` columns computed from ``_GID``."""
    offsets = global_offsets(node_counts)
    ordered = [t for t in sorted(node_counts) if node_counts[t] > 0]
    if not ordered:
        return df.withColumn(NODE_TYPE, F.lit(None).cast("string")).withColumn(G.NODE_ID, F.col(_GID))
    type_col, off_col = F.lit(ordered[-1]), F.lit(offsets[ordered[-1]])
    for t in reversed(ordered[:-1]):
        end = offsets[t] + node_counts[t]
        type_col = F.when(F.col(_GID) < end, F.lit(t)).otherwise(type_col)
        off_col = F.when(F.col(_GID) < end, F.lit(offsets[t])).otherwise(off_col)
    return df.withColumn(NODE_TYPE, type_col).withColumn(G.NODE_ID, (F.col(_GID) - off_col).cast("long"))


# ---------------------------------------------------------------- engine choice
def graphframes_available(spark: SparkSession) -> bool:
    """True when ``graphframes`` imports and ``org.graphframes.GraphFrame`` loads in the JVM
    (never on Spark Connect: its GraphFrames needs a server plugin, which this does not look for)."""
    if importlib.util.find_spec("graphframes") is None or is_connect(spark):
        return False
    jvm = spark.sparkContext._jvm
    try:  # Spark's loader sees spark.jars.packages; Py4JJavaError when the class is absent
        jvm.org.apache.spark.util.Utils.classForName("org.graphframes.GraphFrame", False, False)
        return True
    except Exception:
        return False


def _use_graphframes(spark, engine: str, supported: bool, what: str) -> bool:
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
    available = engine != "dataframe" and graphframes_available(spark)
    if engine == "graphframes" and not (available and supported):
        raise ValueError(f"engine: 'graphframes' cannot run {what}: " + (
            "GraphFrames has no weighted PageRank (use weighted=False)" if available
            else "its JVM package is not on the classpath"))
    log.info("%s: %s", what, "GraphFrames" if available and supported else
             f"Spark DataFrame implementation (engine={engine!r}, GraphFrames JVM package "
             f"{'present' if available else 'absent'})")
    return available and supported


# ---------------------------------------------------------------- degree distribution
def degree_distribution(edges: Mapping[str, DataFrame], node_counts: Mapping[str, int] | None = None) -> DataFrame:
    """Degree distribution per edge type and direction.

    Args:
        edges: ``{"<src>__<rel>__<dst>": DataFrame(src_id, dst_id, weight, ...)}``.
        node_counts: ``{node_type: count}``; when given, nodes without an edge of the type are
            counted at degree 0 (rows with ``num_nodes = 0`` are never emitted).

    Returns:
        DataFrame ``(edge_type, direction, degree, num_nodes)`` (:data:`DEGREE_DIST_SCHEMA`),
        ``direction`` ``"out"`` (per src_id) or ``"in"`` (per dst_id). Example: edges ``0→1, 0→2``
        of ``user__follows__user`` with 4 users → out: (2: 1 node), (0: 3 nodes); in: (1: 2 nodes),
        (0: 2 nodes).
    """
    _check_inputs(node_counts, edges, need_counts=False)
    parts = []
    for name, df in sorted(edges.items()):
        src, _, dst = parse_edge_type(name, "edges")
        for direction, col, node_type in ((OUT, G.SRC_ID, src), (IN, G.DST_ID, dst)):
            per_node = df.groupBy(col).agg(F.count(F.lit(1)).alias(DEGREE))
            dist = per_node.groupBy(DEGREE).agg(F.count(F.lit(1)).alias(NUM_NODES))
            if node_counts is not None:
                zero = dist.agg((F.lit(node_counts[node_type]) - F.coalesce(F.sum(NUM_NODES), F.lit(0)))
                                .alias(NUM_NODES)).select(F.lit(0).cast("long").alias(DEGREE), NUM_NODES)
                dist = dist.unionByName(zero.where(F.col(NUM_NODES) > 0))
            parts.append(dist.select(F.lit(name).alias(EDGE_TYPE), F.lit(direction).alias(DIRECTION),
                                     F.col(DEGREE).cast("long").alias(DEGREE),
                                     F.col(NUM_NODES).cast("long").alias(NUM_NODES)))
    if not parts:
        return _spark_of(edges).createDataFrame([], DEGREE_DIST_SCHEMA)
    return reduce(DataFrame.unionByName, parts)


def _node_degrees(node_counts, edges) -> DataFrame | None:
    """``(_GID, degree_in, degree_out)`` over all edge types, only for nodes with an edge."""
    e = _global_edges(node_counts, edges, weighted=False)
    if e is None:
        return None
    out = e.groupBy(F.col(_SRC).alias(_GID)).agg(F.count(F.lit(1)).alias(DEGREE_OUT))
    inn = e.groupBy(F.col(_DST).alias(_GID)).agg(F.count(F.lit(1)).alias(DEGREE_IN))
    return inn.join(out, _GID, "full")


# ---------------------------------------------------------------- PageRank
def _undirected(node_counts, edges, weighted: bool) -> DataFrame | None:
    """Both directions of every edge (a self-loop once), positive weights only."""
    e = _global_edges(node_counts, edges, weighted)
    if e is None:
        return None
    e = e.where(F.col(_W) > 0)
    back = e.where(F.col(_SRC) != F.col(_DST)).select(F.col(_DST).alias(_SRC), F.col(_SRC).alias(_DST), _W)
    return e.unionByName(back)


def _pagerank_gid(spark, node_counts, edges, iterations, damping, weighted, engine) -> DataFrame:
    """``(_GID, pagerank)`` for every gid, materialised.

    Power iteration of the *linear* form ``y' = d * y @ P + (1 - d) / N`` over the nodes that
    have an edge, then ``x = y / sum(y)``. With uniform teleport and uniform dangling mass this
    has the same fixed point as networkx's ``x' = d * (x @ P + dangling(x) / N) + (1 - d) / N``
    (both are proportional to ``u (I - d P)^-1``) and converges as fast (error ~ d^k), but needs
    no per-iteration aggregate, and nodes without edges (the only dangling ones, in the
    undirected view) stay out of the loop at their constant ``(1 - d) / N``.
    """
    total = sum(node_counts.values())
    nodes = spark.range(total).withColumnRenamed("id", _GID)
    und = _undirected(node_counts, edges, weighted)
    if und is None:
        return _materialize(nodes.select(_GID, F.lit(1.0 / total).alias(PAGERANK)))
    if _use_graphframes(spark, engine, supported=not weighted, what="pagerank"):
        return _pagerank_graphframes(nodes, und, iterations, damping)
    strength = und.groupBy(_SRC).agg(F.sum(_W).alias("_gl_s"))
    small = total <= BROADCAST_NODES
    trans = _materialize(und.join(F.broadcast(strength) if small else strength, _SRC)
                         .select(_SRC, _DST, (F.col(_W) / F.col("_gl_s")).alias(_W)))
    small = small and trans.count() >= BROADCAST_MIN_EDGES  # below, the broadcast jobs cost more
    ranks = _materialize(strength.select(F.col(_SRC).alias(_GID), F.lit(1.0 / total).alias(PAGERANK)))
    teleport = (1.0 - damping) / total
    for it in range(iterations):
        side = ranks.select(F.col(_GID).alias(_SRC), PAGERANK)
        side = F.broadcast(side) if small else side  # then only partial sums by dst are shuffled
        ranks = trans.join(side, _SRC).groupBy(F.col(_DST).alias(_GID)).agg(
            (F.lit(damping) * F.sum(F.col(_W) * F.col(PAGERANK)) + F.lit(teleport)).alias(PAGERANK))
        if (it + 1) % CHECKPOINT_EVERY == 0:  # each step reads the previous one once: linear lineage
            ranks = _materialize(ranks)
    ranks = nodes.join(ranks, _GID, "left").select(_GID, F.coalesce(PAGERANK, F.lit(teleport)).alias(PAGERANK))
    norm = ranks.agg(F.sum(PAGERANK)).first()[0]
    return _materialize(ranks.select(_GID, (F.col(PAGERANK) / F.lit(norm)).alias(PAGERANK)))


def _graphframe(nodes: DataFrame, e: DataFrame):
    from graphframes import GraphFrame

    return GraphFrame(nodes.withColumnRenamed(_GID, "id"), e.select(F.col(_SRC).alias("src"), F.col(_DST).alias("dst")))


def _pagerank_graphframes(nodes, und, iterations, damping) -> DataFrame:
    pr = _graphframe(nodes, und).pageRank(resetProbability=1.0 - damping, maxIter=iterations).vertices
    pr = _materialize(pr.select(F.col("id").alias(_GID), F.col("pagerank").cast("double").alias(PAGERANK)))
    norm = pr.agg(F.sum(PAGERANK)).first()[0] or 1.0
    return pr.select(_GID, (F.col(PAGERANK) / F.lit(norm)).alias(PAGERANK))


def pagerank(node_counts: Mapping[str, int], edges: Mapping[str, DataFrame], iterations: int = 10,
             damping: float = 0.85, *, weighted: bool = True, engine: str = "auto", validate: bool = True) -> DataFrame:
    """PageRank of every node of the undirected, weighted homogeneous view (see module docstring).

    Args:
        node_counts: ``{node_type: n}``; node ids are ``0..n-1``.
        edges: ``{"<src>__<rel>__<dst>": DataFrame(src_id, dst_id, weight, ...)}``.
        iterations: power iterations, one Spark job each; the error shrinks like ``damping**k``
            (10 → ~0.2 of the L1 distance from the start, 30 → 0.008, 60 → 6e-5)
        damping: probability of following an edge (networkx ``alpha``).
        weighted: use ``weight``; False gives every edge row weight 1.
        engine: ``"auto"`` (GraphFrames when present and unweighted), ``"dataframe"``, ``"graphframes"``.
        validate: check node ids against ``node_counts`` first (:func:`validate_ids`).

    Returns:
        DataFrame ``(node_type, node_id, pagerank)``, one row per node, ranks summing to 1.

    Example: a single edge ``user 0 — item 0`` plus an isolated ``user 1`` with damping 0.85 →
    both ends 0.4651..., the isolated user 0.0698....
    """
    _check_inputs(node_counts, edges)
    _check_params(iterations, damping)
    if validate:
        validate_ids(node_counts, edges)
    spark = _spark_of(edges)
    if sum(node_counts.values()) == 0:
        return spark.createDataFrame([], "node_type string, node_id long, pagerank double")
    pr = _pagerank_gid(spark, node_counts, edges, iterations, damping, weighted, engine)
    return _with_type(pr, node_counts).select(NODE_TYPE, G.NODE_ID, PAGERANK)


# ---------------------------------------------------------------- connected components
def _large_star(e: DataFrame) -> DataFrame:
    """Connect every neighbour ``v > u`` of ``u`` to the min of ``u``'s closed neighbourhood."""
    d = e.select(F.col(_A).alias(_SRC), F.col(_B).alias(_DST)).unionByName(
        e.select(F.col(_B).alias(_SRC), F.col(_A).alias(_DST)))
    m = d.groupBy(_SRC).agg(F.least(F.min(_DST), F.col(_SRC)).alias(_M))
    out = d.join(m, _SRC).where(F.col(_DST) > F.col(_SRC))
    return out.select(F.col(_DST).alias(_A), F.col(_M).alias(_B)).distinct()


def _small_star(e: DataFrame) -> DataFrame:
    """Connect ``u`` and its smaller neighbours to the min of them (edges kept as ``a > b``)."""
    m = e.groupBy(_A).agg(F.min(_B).alias(_M))
    leaves = e.join(m, _A).where(F.col(_B) != F.col(_M)).select(F.col(_B).alias(_A), F.col(_M).alias(_B))
    return leaves.unionByName(m.select(_A, F.col(_M).alias(_B))).distinct()


def _fingerprint(e: DataFrame) -> tuple:
    """(rows, sum of a 64-bit hash per row) of a distinct edge set: one scan, no shuffle. Two
    different sets agree only on a hash-sum collision (~2^-64)."""
    r = e.agg(F.count(F.lit(1)), F.sum(F.xxhash64(_A, _B).cast("decimal(38,0)"))).first()
    return int(r[0]), r[1]


def _components_gid(spark, node_counts, edges, max_rounds: int, engine: str) -> DataFrame:
    """``(_GID, component)`` for every gid, materialised."""
    nodes = spark.range(sum(node_counts.values())).withColumnRenamed("id", _GID)
    e = _global_edges(node_counts, edges, weighted=False)
    if e is None:
        return _materialize(nodes.select(_GID, F.col(_GID).alias(COMPONENT)))
    if _use_graphframes(spark, engine, supported=True, what="connected components"):
        return _components_graphframes(nodes, e)
    e = _materialize(e.where(F.col(_SRC) != F.col(_DST)).select(
        F.greatest(_SRC, _DST).alias(_A), F.least(_SRC, _DST).alias(_B)).distinct())
    fingerprint = _fingerprint(e)
    for rnd in range(max_rounds):
        e, previous = _materialize(_small_star(_large_star(e))), fingerprint
        fingerprint = _fingerprint(e)
        if fingerprint == previous:
            log.info("connected components converged after %d rounds", rnd + 1)
            break
    else:
        raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")
    # a converged edge set is a star forest: every non-root node points at its root (the min)
    labels = e.groupBy(F.col(_A).alias(_GID)).agg(F.min(_B).alias(COMPONENT))
    return _materialize(nodes.join(labels, _GID, "left")
                        .select(_GID, F.coalesce(F.col(COMPONENT), F.col(_GID)).alias(COMPONENT)))


def _components_graphframes(nodes, e) -> DataFrame:
    # GraphFrames' own algorithm needs a checkpoint directory; GraphX's does not
    algorithm = "graphframes" if nodes.sparkSession.sparkContext.getCheckpointDir() else "graphx"
    cc = _graphframe(nodes, e).connectedComponents(algorithm=algorithm)
    cc = cc.select(F.col("id").alias(_GID), F.col("component"))
    # relabel every component with its smallest gid, whatever id GraphFrames picked
    low = cc.groupBy("component").agg(F.min(_GID).alias(COMPONENT))
    return _materialize(cc.join(low, "component").select(_GID, COMPONENT))


def connected_components(node_counts: Mapping[str, int], edges: Mapping[str, DataFrame], *,
                         max_rounds: int = 100, engine: str = "auto", validate: bool = True) -> DataFrame:
    """Weakly connected components of the whole heterogeneous graph.

    Args:
        node_counts, edges: as for :func:`pagerank`.
        max_rounds: large-star/small-star rounds before giving up (RuntimeError); O(log n) suffice.
        engine, validate: as for :func:`pagerank`.

    Returns:
        DataFrame ``(node_type, node_id, component)``; ``component`` is the smallest global id
        (:func:`global_offsets`) in the node's component. :func:`component_summary` sums it up.

    Example: ``{"item": 2, "user": 2}`` with one edge ``user 1 → item 1`` → item 0: 0, item 1: 1,
    user 0: 2, user 1: 1.
    """
    _check_inputs(node_counts, edges)
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise ValueError(f"max_rounds: expected an int >= 1, got {max_rounds!r}")
    if validate:
        validate_ids(node_counts, edges)
    spark = _spark_of(edges)
    cc = _components_gid(spark, node_counts, edges, max_rounds, engine)
    return _with_type(cc, node_counts).select(NODE_TYPE, G.NODE_ID, COMPONENT)


def component_sizes(components: DataFrame) -> DataFrame:
    """Size distribution ``(component_size, num_components)`` of a DataFrame with ``component``."""
    if not isinstance(components, DataFrame) or COMPONENT not in components.columns:
        raise TypeError("components: expected a DataFrame with a 'component' column")
    sizes = components.groupBy(COMPONENT).agg(F.count(F.lit(1)).alias(COMPONENT_SIZE))
    return sizes.groupBy(COMPONENT_SIZE).agg(F.count(F.lit(1)).cast("long").alias(NUM_COMPONENTS)).select(
        F.col(COMPONENT_SIZE).cast("long").alias(COMPONENT_SIZE), NUM_COMPONENTS)


def component_summary(components: DataFrame) -> dict:
    """``{"components", "largest_component", "singleton_components"}`` of a components DataFrame
    (``connected_components`` output, a node stats table, or ``graph/components`` itself)."""
    sizes = components if COMPONENT_SIZE in components.columns else component_sizes(components)
    r = sizes.agg(F.sum(NUM_COMPONENTS).alias("n"), F.max(COMPONENT_SIZE).alias("largest"),
                  F.sum(F.when(F.col(COMPONENT_SIZE) == 1, F.col(NUM_COMPONENTS))).alias("single")).first()
    return {"components": int(r["n"] or 0), "largest_component": int(r["largest"] or 0),
            "singleton_components": int(r["single"] or 0)}


# ---------------------------------------------------------------- the graph/stats step
def graph_stats(spark, node_counts: dict[str, int], edges: dict[str, DataFrame], iterations: int = 10,
                damping: float = 0.85, seed: int = 0, *, weighted: bool = True,
                engine: str = "auto") -> dict[str, DataFrame]:
    """Every analytics table of one graph version, keyed by table name.

    Args:
        spark: the SparkSession; node_counts, edges: as for :func:`pagerank`.
        iterations, damping, weighted, engine: PageRank settings (:func:`pagerank`).
        seed: unused: every algorithm here is deterministic (kept for a sampled variant).

    Returns:
        ``{"graph/stats": degree distribution (DEGREE_DIST_SCHEMA),
        "graph/components": component size distribution (COMPONENTS_SCHEMA),
        "graph/node_stats_<type>": (node_id, pagerank, component, degree_in, degree_out)}``
        (NODE_STATS_SCHEMA; degrees over all edge types, as stored, i.e. directed) for each type.
        Per-node values are computed once and materialised; :func:`summary` sums them up.
    """
    check_session(spark)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    _check_inputs(node_counts, edges)
    _check_params(iterations, damping)
    validate_ids(node_counts, edges)
    out = {GRAPH_STATS: degree_distribution(edges, node_counts)}
    total = sum(node_counts.values())
    if total == 0:
        out[GRAPH_COMPONENTS] = spark.createDataFrame([], COMPONENTS_SCHEMA)
        for t in sorted(node_counts):
            out[node_stats_table(t)] = spark.createDataFrame([], NODE_STATS_SCHEMA)
        return out
    pr = _pagerank_gid(spark, node_counts, edges, iterations, damping, weighted, engine)
    cc = _components_gid(spark, node_counts, edges, 100, engine)
    per_node, degrees = pr.join(cc, _GID), _node_degrees(node_counts, edges)
    per_node = per_node.join(degrees, _GID, "left") if degrees is not None else per_node.select(
        "*", F.lit(None).alias(DEGREE_IN), F.lit(None).alias(DEGREE_OUT))
    per_node = _materialize(per_node.select(_GID, *[F.coalesce(F.col(c), F.lit(z)).cast(t).alias(c) for c, z, t in (
        (PAGERANK, 0.0, "double"), (COMPONENT, -1, "long"), (DEGREE_IN, 0, "long"), (DEGREE_OUT, 0, "long"))]))
    out[GRAPH_COMPONENTS] = component_sizes(per_node)
    for t, off in global_offsets(node_counts).items():
        part = per_node.where((F.col(_GID) >= off) & (F.col(_GID) < off + node_counts[t]))
        out[node_stats_table(t)] = part.select((F.col(_GID) - F.lit(off)).alias(G.NODE_ID), PAGERANK, COMPONENT,
                                               DEGREE_IN, DEGREE_OUT)
    return out


def summary(stats: Mapping[str, DataFrame]) -> dict:
    """JSON-able figures of a :func:`graph_stats` result (or the same tables read back).

    Returns ``{"nodes": {type: n}, "isolated_nodes": {type: n}, "components": int,
    "largest_component": int, "singleton_components": int}``; isolated = no edge in any type.
    """
    if not isinstance(stats, Mapping):
        raise TypeError(f"stats: expected the dict graph_stats returned, got {type(stats).__name__}")
    prefix = node_stats_table("")
    nodes, isolated = {}, {}
    for name in sorted(stats):
        if name.startswith(prefix):
            r = stats[name].agg(F.count(F.lit(1)).alias("n"), F.sum(
                ((F.col(DEGREE_IN) + F.col(DEGREE_OUT)) == 0).cast("long")).alias("iso")).first()
            nodes[name[len(prefix):]], isolated[name[len(prefix):]] = int(r["n"]), int(r["iso"] or 0)
    comps = component_summary(stats[GRAPH_COMPONENTS]) if GRAPH_COMPONENTS in stats else {}
    return {"nodes": nodes, "isolated_nodes": isolated, **comps}
