"""training.model: node encoders, heterogeneous GraphSAGE layers, the model and its decoder/losses.

See ``hetero_sage.py`` for the model and ``ModelConfig``; the batch contract is
``graphlake.training.sampling.base`` (Block, SampledBatch).
"""

from graphlake.training.model.decoder import (
    bpr_loss,
    l2_regularisation,
    sampled_softmax_loss,
    score,
    shared_negative_scores,
)
from graphlake.training.model.encoders import HeteroEncoder, NodeEncoder, NodeFeatureSpec
from graphlake.training.model.hetero_sage import HeteroGraphSAGE, ModelConfig, gather_features
from graphlake.training.model.sage_layer import HeteroSAGEConv
from graphlake.training.model.shared_softmax import shared_softmax_loss

__all__ = [
    "HeteroEncoder",
    "HeteroGraphSAGE",
    "HeteroSAGEConv",
    "ModelConfig",
    "NodeEncoder",
    "NodeFeatureSpec",
    "bpr_loss",
    "gather_features",
    "l2_regularisation",
    "sampled_softmax_loss",
    "shared_negative_scores",
    "shared_softmax_loss",
    "score",
]
