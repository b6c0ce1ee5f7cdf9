"""training.sampling: the heterogeneous CSR graph, the neighbour sampler and negative sampling.

See ``base.py`` for the Block / SampledBatch contract the model consumes.
"""

from graphlake.training.sampling.base import (
                                    REVERSE_PREFIX,
                                    Block,
                                    NeighborSampler,
                                    Relation,
                                    SampledBatch,
                                    message_relations,
                                    relation_name,
)
from graphlake.training.sampling.csr_sampler import CSRNeighborSampler
from graphlake.training.sampling.graph import HeteroCSRGraph, csr_contains, csr_find_range, csr_rows
from graphlake.training.sampling.negatives import STRATEGIES, NegativeSampler, split_counts

__all__ = [
    "REVERSE_PREFIX", "Block", "NeighborSampler", "Relation", "SampledBatch", "message_relations", "relation_name",
    "CSRNeighborSampler", "HeteroCSRGraph", "csr_contains", "csr_find_range", "csr_rows",
    "STRATEGIES", "NegativeSampler", "split_counts",
]
