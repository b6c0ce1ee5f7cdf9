"""training.model: node encoders, heterogeneous GraphSAGE layers, the model and its decoder/losses.

See ``hetero_sage.py`` for the model and ``ModelConfig``; the batch contract is
``training.sampling.base`` (Block, SampledBatch).
"""

from training.model.decoder import bpr_loss, l2_regularisation, sampled_softmax_loss, score, shared_negative_scores
from training.model.encoders import HeteroEncoder, NodeEncoder, NodeFeatureSpec
from training.model.shared_softmax import shared_softmax_loss
from training.model.hetero_sage import HeteroGraphSAGE, ModelConfig, gather_features
from training.model.sage_layer import HeteroSAGEConv

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
