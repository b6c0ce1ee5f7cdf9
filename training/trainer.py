"""The training loop of one rank: link prediction on the target edge types of a snapshot.

Runs the same way in a single process (``LocalBackend``) and in every rank of a Horovod or DDP
job: each rank reads only its shard of the training edges (a contiguous slice of the
memory-mapped CSR), samples neighbourhoods from the memory-mapped graph, and the backend
averages the gradients. Every random choice derives from ``(seed, epoch, step, rank)``
(:mod:`graphlake.training.checkpoint`), so a resumed run equals an uninterrupted one.

Per step, for every target edge type ``(s, r, d)``: a batch of positive pairs, ``num_negatives``
negatives per pair from the configured mix over ``d`` nodes, the sampled ``len(fanouts)``-hop
neighbourhood of all of them (``mode: sampled``; the batch's own target edges are excluded from
it, the standard leakage guard) or the whole graph (``mode: full``, LightGCN), BPR or sampled-
softmax loss plus ``l2`` on the batch's embeddings.

With ``cold_start_fraction > 0`` a share of the targets' items is held out of training entirely
(:mod:`graphlake.training.cold_start`): :func:`graphlake.training.run_data.training_csr` drops their interaction edges, the graph
carries their attribute edges one way (into them), every forward pass masks their ID rows and
neutralises their count features, and the negative samplers never draw them; ``embed_all``
still embeds them (from features and attribute edges), which is what the cold-start evaluation
ranks.

Example:
    >>> trainer = Trainer(open_snapshot(path), TrainConfig(epochs=1), run_dir, LocalBackend())
    >>> history = trainer.fit()
    >>> embeddings = trainer.embed_all()      # {node_type: (num_nodes, dim) float32}
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from typing import NamedTuple

import numpy as np
import torch

from graphlake.core.edge_types import parse_edge_type
from graphlake.training import checkpoint as ckpt
from graphlake.training.cold_start import write_cold_items
from graphlake.training.config import TrainConfig
from graphlake.training.distributed.base import rank_rows
from graphlake.training.layerwise import layerwise_embeddings
from graphlake.training.metrics import ranking_metrics
from graphlake.training.model import HeteroGraphSAGE, NodeEncoder, gather_features
from graphlake.training.model.decoder import (
    bpr_loss,
    l2_regularisation,
    sampled_softmax_loss,
    score,
    shared_negative_scores,
    with_score_bias,
)
from graphlake.training.model.shared_softmax import shared_softmax_loss
from graphlake.training.optim import CompositeOptimizer, ResidentGrads, RowAdam, dense_adam
from graphlake.training.prefetch import prefetched
from graphlake.training.run import TrainRun
from graphlake.training.run_data import (
    FEATURE_NAMES,
    feature_specs,
    full_degrees,
    resolve_targets,
    trained_node_types,
    training_csr,
)
from graphlake.training.sampling import CSRNeighborSampler, HeteroCSRGraph, NegativeSampler, message_relations
from graphlake.training.sampling.base import SampledBatch
from graphlake.training.scoring import has_score_column, prior_roles, ranking_score, scoring_vectors

log = logging.getLogger(__name__)


class StepInput(NamedTuple):
    """What :meth:`Trainer._prepare_step` hands to :meth:`Trainer._step_loss`: per target the
    ``(edge_type, src_type, dst_type, src_offset, dst_offset, batch, pos_dst, neg_ids)`` plan
    (offsets into the step's seeds of each type), for each seed position the row of the model's
    output that holds it (``{type: int64 (S_t,)}``: rows of the distinct seeds' batch, or the global
    ids in ``mode: full``) and the distinct seeds' sampled neighbourhood (None in ``mode: full``)."""

    plan: tuple
    rows: dict
    batch: SampledBatch | None


class Trainer:
    """One rank's trainer (see the module docstring).

    Args:
        snapshot: an opened training snapshot (:func:`graphlake.graph_build.snapshot.open_snapshot`).
        config: :class:`TrainConfig`.
        run_dir: the run's folder (checkpoints, metrics); shared by all ranks.
        backend: a :class:`graphlake.training.distributed.base.Backend`.
        progress: show a progress bar on the root rank.
    """

    def __init__(self, snapshot, config: TrainConfig, run_dir: str, backend, progress: bool = True):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config: expected TrainConfig, got {type(config).__name__}")
        self.snapshot, self.config, self.run_dir, self.backend, self.progress = snapshot, config, run_dir, backend, progress
        self.device = backend.device
        self.targets = resolve_targets(snapshot, config)
        unknown = sorted(set(config.target_weights) - set(self.targets))
        if unknown:
            raise ValueError(f"target_weights: {unknown} are not targets of this run (targets: {self.targets})")
        csr, self.validation, self.cold = training_csr(snapshot, config, self.targets)
        self.node_types = trained_node_types(csr)
        self.graph = HeteroCSRGraph({t: snapshot.num_nodes(t) for t in self.node_types}, csr)
        if self.cold is not None:  # held-out items receive messages (attribute edges) but send none
            self.graph = self.graph.restrict_messages(self.cold.levels())
            if backend.is_root:
                write_cold_items(run_dir, self.cold, config.cold_start_fraction, config.seed)
        self.features = {t: {n: snapshot.features(t, n) for n in snapshot.feature_names(t) if n in FEATURE_NAMES}
                         for t in snapshot.node_types}
        torch.manual_seed(ckpt.step_seed(config.seed, 1))  # same initial parameters on every rank
        self.model_config = config.model_config()
        skipped = sorted(set(snapshot.node_types) - set(self.node_types))
        if skipped and backend.is_root:
            log.info("node types %s are in none of the configured edge types: not modelled, not embedded", skipped)
        self.prior_roles = prior_roles(self.targets) if has_score_column(self.model_config) else (set(), set())
        self.model = HeteroGraphSAGE.from_config(self.model_config, feature_specs(snapshot, self.node_types),
                                                 self.graph.relations, destination_types=sorted(self.prior_roles[1]))
        self.model.to(self.device)
        self.id_types = {t for t, enc in self.model.encoder.encoders.items() if enc.id_embedding is not None}
        self.net = backend.wrap_model(self.model)  # DDP: gradient averaging hooks; the others: the model
        self.degrees = full_degrees(self.graph) if self.model_config.weight_free else None
        self.prior_degrees = {}
        if self.model_config.popularity_prior > 0:  # destinations' training degrees over the targets
            for e in self.targets:
                rel = message_relations(e)[0]  # (s, r, d): aggregated at d
                deg = self.graph.degree(rel, torch.arange(self.graph.num_nodes[rel[2]])).numpy()
                self.prior_degrees[rel[2]] = self.prior_degrees.get(rel[2], 0) + deg
        # full mode: one batch for the whole run (its edge tensors, and so their sorted layouts, are reused)
        self.full = (self.graph.full_batch(self.node_types, num_layers=self.model_config.num_layers).edges_to(self.device)
                     if config.mode == "full" else None)
        self.sampler = CSRNeighborSampler(self.graph, list(config.fanouts), weighted=config.weighted_sampling)
        self.negatives = {}
        for e in self.targets:
            s_type, _, d_type = parse_edge_type(e)
            fwd, rev = message_relations(e)
            cold = self.cold is not None and self.cold.node_type == d_type
            self.negatives[e] = NegativeSampler(
                self.graph.num_nodes[d_type], dict(config.negatives),
                degrees=self.graph.degree(fwd, torch.arange(self.graph.num_nodes[d_type])).to(torch.float32),
                positives=self.graph.csr(rev)[:2], candidates=self.cold.kept_ids() if cold else None)
        self.shards = {e: self.graph.train_edges(e, backend.rank, backend.world_size) for e in self.targets}
        self.edge_counts = {e: self.graph.edge_count(e) for e in self.targets}
        self.total_edges = sum(self.edge_counts.values())
        self.optimizer = self._optimizer()
        self.history: list[dict] = []
        self._orders: dict[str, tuple[int, torch.Tensor]] = {}
        # "hard" negatives: pools scored with the run's vectors as of the start of the epoch
        self.hard_tables: dict[str, torch.Tensor] | None = None
        self._boundary_vectors: tuple[int, dict] | None = None  # (next epoch, embed_all at the epoch boundary)

    # ------------------------------------------------------------------ set-up
    def _optimizer(self) -> CompositeOptimizer:
        """Dense parameters: Adam (fused where torch has the kernel) / Adagrad / SGD; sparse ID
        tables: :class:`graphlake.training.optim.RowAdam` (SparseAdam's algorithm, faster) with Adam (the
        others take sparse gradients themselves). Each optimizer is wrapped by the backend on its
        own (Horovod's DistributedOptimizer wraps one torch optimizer)."""
        dense = [p for n, p in self.model.named_parameters() if not self._is_sparse(n)]
        sparse = [p for n, p in self.model.named_parameters() if self._is_sparse(n)]
        c = self.config
        if c.optimizer == "adam":
            inner = [dense_adam(dense, lr=c.lr, weight_decay=c.weight_decay)] if dense else []
            inner += [RowAdam(sparse, lr=c.lr)] if sparse else []
        else:
            cls = torch.optim.Adagrad if c.optimizer == "adagrad" else torch.optim.SGD
            inner = [cls(dense + sparse, lr=c.lr, weight_decay=0.0 if sparse else c.weight_decay)]
        tables = []  # dense ID tables: their gradients stay allocated (training.optim.ResidentGrads)
        for module in self.model.modules():
            if isinstance(module, NodeEncoder) and module.id_embedding is not None and not module.id_embedding.sparse:
                module.sparse_id_lookup = True
                tables.append(module.id_embedding.weight)
        return CompositeOptimizer(*[self.backend.wrap_optimizer(o, self.model) for o in inner],
                          resident=ResidentGrads(tables) if tables else None)

    def _is_sparse(self, name: str) -> bool:
        module = self.model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else self.model
        return isinstance(module, torch.nn.Embedding) and module.sparse

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.total_edges / self.config.batch_size))

    def _rank_batch(self, e: str, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's positives of target ``e`` for (epoch, step): a slice of its shard in a per-epoch order."""
        src, dst = self.shards[e]
        n = len(src)
        share = self.config.batch_size * self.edge_counts[e] / max(1, self.total_edges) / self.backend.world_size
        per_rank = max(1, int(round(share)))
        if n == 0:
            return src[:0], dst[:0]
        cached = self._orders.get(e)
        if cached is None or cached[0] != epoch:  # one permutation per (target, epoch): f(seed, epoch, rank)
            cached = self._orders[e] = (epoch, torch.randperm(n, generator=ckpt.generator(
                self.config.seed, 2, epoch, self.backend.rank, self.targets.index(e))))
        idx = cached[1].index_select(0, (torch.arange(per_rank) + step * per_rank) % n)
        return src.index_select(0, idx), dst.index_select(0, idx)

    # ------------------------------------------------------------------ one step
    def _prepare_step(self, epoch: int, step: int) -> StepInput:
        """Everything of step ``(epoch, step)`` that does not touch the model: this rank's positives,
        their negatives and (``mode: sampled``) their sampled neighbourhood.

        A function of ``(seed, epoch, step, rank)`` alone (its own generator; never torch's global
        one), so :func:`graphlake.training.prefetch.prefetched` can run it one step ahead in a thread.
        """
        c, g = self.config, ckpt.generator(self.config.seed, 3, epoch, step, self.backend.rank)
        seeds: dict[str, list] = {}
        plan, exclude = [], {}
        for e in self.targets:
            s_type, _, d_type = parse_edge_type(e)
            pos_src, pos_dst = self._rank_batch(e, epoch, step)
            if c.shared_negatives:  # one set of num_negatives for the whole batch (scored by a matmul)
                neg = self.negatives[e].sample(pos_src[:1], pos_dst[:1], c.num_negatives, generator=g)
            elif self.hard_tables is not None:  # read-only during the epoch: safe in the prefetch thread
                neg = self.negatives[e].sample(pos_src, pos_dst, c.num_negatives, generator=g,
                                               user_emb=self.hard_tables[s_type].index_select(0, pos_src),
                                               item_emb=self.hard_tables[d_type])
            else:
                neg = self.negatives[e].sample(pos_src, pos_dst, c.num_negatives, generator=g)
            s_off = sum(len(x) for x in seeds.get(s_type, []))
            seeds.setdefault(s_type, []).append(pos_src)
            d_off = sum(len(x) for x in seeds.get(d_type, []))
            seeds.setdefault(d_type, []).extend([pos_dst, neg.reshape(-1)])
            plan.append((e, s_type, d_type, s_off, d_off, len(pos_src), pos_dst, neg.reshape(-1)))
            exclude[e] = (pos_src, pos_dst)
        seeds_t = {t: torch.cat(v) for t, v in seeds.items()}
        if c.mode == "full":  # the outputs' rows are the global ids
            return StepInput(tuple(plan), seeds_t, None)
        # a node drawn twice (a popular item as two positives, or as a positive and a negative) is
        # sampled and embedded once; its output row is shared by every position it fills
        unique = {t: torch.unique(ids, return_inverse=True) for t, ids in seeds_t.items()}
        batch = self.sampler.sample({t: u for t, (u, _) in unique.items()}, generator=g, exclude=exclude)
        return StepInput(tuple(plan), {t: rows for t, (_, rows) in unique.items()}, batch)

    def _step_loss(self, epoch: int, step: int, prepared: StepInput | None = None) -> tuple[torch.Tensor, int]:
        """The loss of step ``(epoch, step)`` and its number of positives (``prepared``: that step's
        :meth:`_prepare_step`, computed here when None)."""
        c = self.config
        if prepared is None:
            prepared = self._prepare_step(epoch, step)
        torch.manual_seed(ckpt.step_seed(c.seed, 4, epoch, step, self.backend.rank))  # dropout
        plan = prepared.plan
        out = self._forward(self.full if c.mode == "full" else prepared.batch)
        out = {t: out[t].index_select(0, rows.to(self.device)) for t, rows in prepared.rows.items()}
        losses, count, total = [], 0, 0.0
        for e, s_type, d_type, s_off, d_off, b, pos_dst, neg_ids in plan:
            if b == 0:
                continue
            u = out[s_type][s_off:s_off + b]
            v = out[d_type][d_off:d_off + b]
            n = out[d_type][d_off + b:d_off + b + len(neg_ids)]
            kind, temp = self.model_config.decoder, self.model_config.temperature
            reg = l2_regularisation(u, v, n)
            bias = self.model.score_bias[d_type] if d_type in self.model.score_bias else None
            if c.shared_negatives and c.loss == "sampled_softmax":  # one fused node over the (B, K) scores
                biases = {} if bias is None else {"pos_bias": bias.index_select(0, pos_dst.to(self.device)),
                                                  "neg_bias": bias.index_select(0, neg_ids.to(self.device))}
                loss = shared_softmax_loss(u, v, n, kind, temp, pos_ids=pos_dst, neg_ids=neg_ids, **biases)
            else:
                if bias is not None:  # learned destination bias: scores are dots of scoring vectors
                    u, v, n = with_score_bias(u, v, n, bias, pos_dst.to(self.device), neg_ids.to(self.device),
                                              kind, temp)
                    kind, temp = "dot", 1.0
                pos_scores = score(u, v, kind=kind, temperature=temp)
                if c.shared_negatives:  # (B, K) by one matmul; a negative equal to the row's positive scores 0
                    neg_scores = shared_negative_scores(u, n, kind, temp, pos_ids=pos_dst, neg_ids=neg_ids, fill=0.0)
                else:
                    n = n.reshape(b, c.num_negatives, -1)
                    neg_scores = score(u, n, kind=kind, temperature=temp)
                loss = (bpr_loss(pos_scores, neg_scores) if c.loss == "bpr"
                        else sampled_softmax_loss(pos_scores, neg_scores))
            w = c.target_weights.get(e, 1.0) * b
            losses.append(loss * w + c.l2 * reg * w)
            count += b
            total += w
        if count == 0:
            return torch.zeros((), requires_grad=True), 0
        return torch.stack(losses).sum() / total, count

    def _inputs(self, node_ids: dict) -> tuple[dict, dict | None]:
        """The features of ``node_ids`` on the device and the cold-start ``id_mask`` (held-out rows:
        no ID row; None without cold start; masks are used on the ids' device)."""
        features = gather_features(self.features, node_ids, device=self.device)
        if self.cold is None:
            return features, None
        return self.cold.prepare(features, node_ids, self.id_types)

    def _forward(self, batch) -> dict:
        net = self.net if torch.is_grad_enabled() else self.model  # inference: no collective hooks
        features, id_mask = self._inputs(batch.node_ids)
        return net(batch, features, id_mask=id_mask, degrees=self.degrees)

    def _encode(self, node_type: str, ids: torch.Tensor) -> torch.Tensor:
        """The input encoder's rows of ``ids`` (layer 0 of layer-wise inference)."""
        features, id_mask = self._inputs({node_type: ids})
        return self.model.encoder({node_type: ids}, features, id_mask)[node_type]

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False, warm_start: str | None = None) -> list[dict]:
        """Train ``config.epochs`` epochs; returns the history.

        Args:
            resume: continue from this run's latest checkpoint (when it has one).
            warm_start: path of a previous run's checkpoint: the model starts from its parameters
                (:func:`graphlake.training.checkpoint.warm_start_state`; fresh optimizer state). Ignored when
                resuming from a checkpoint of this run, which already holds the warm-started model.
        """
        c, b = self.config, self.backend
        epoch = step = global_step = 0
        state = ckpt.load_latest(self.run_dir) if resume else None
        if state is None and warm_start is not None:
            previous = ckpt.load_checkpoint(warm_start)["model"]
            loaded, report = ckpt.warm_start_state(self.model.state_dict(), previous)
            self.model.load_state_dict(loaded)
            log.info("rank %d warm start from %s: %d copied, %d grown, %d new, %d dropped", b.rank, warm_start,
                     *(len(report[k]) for k in ("copied", "grown", "new", "dropped")))
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            epoch, step, global_step, self.history = state["epoch"], state["step"], state["global_step"], state["history"]
            log.info("rank %d resumed at epoch %d step %d", b.rank, epoch, step)
        for opt in self.optimizer.optimizers:
            b.broadcast_state(self.model, opt)
        total_steps = c.epochs * self.steps_per_epoch
        bar = _progress(self.progress and b.is_root, total_steps, global_step)
        while epoch < c.epochs:
            if c.negatives.get("hard", 0) > 0:
                self._hard_tables_for(epoch, step, state)
            self.model.train()
            started, seen = time.time(), 0
            steps = prefetched(lambda k, e=epoch: self._prepare_step(e, k), range(step, self.steps_per_epoch),
                               enabled=c.prefetch)
            with contextlib.closing(steps):  # the next step's sampling runs while this one trains
                for _, prepared in steps:
                    self.optimizer.zero_grad()
                    loss, n = self._step_loss(epoch, step, prepared)
                    loss.backward()
                    lr = c.lr * c.lr_factor(global_step, total_steps)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    self.optimizer.step()
                    step, global_step = step + 1, global_step + 1
                    seen += n
                    value = b.allreduce_mean(float(loss.detach()), "loss")
                    rate = seen * b.world_size / max(1e-9, time.time() - started)
                    entry = {"epoch": epoch, "step": global_step, "loss": value, "edges_per_s": rate}
                    self.history.append(entry if c.lr_schedule == "constant" else {**entry, "lr": lr})
                    if bar is not None:
                        bar.set_postfix(epoch=epoch, loss=f"{value:.4f}", edges_s=f"{rate:,.0f}")
                        bar.update(1)
                    if global_step % c.checkpoint_every == 0 and step < self.steps_per_epoch:
                        self._checkpoint(epoch, step, global_step)
            epoch, step = epoch + 1, 0
            if self.validation and b.is_root:
                boundary = None
                if c.negatives.get("hard", 0) > 0 and epoch < c.epochs:  # one inference pass serves both
                    boundary = self.embed_all(trained_node_types(self.targets))
                    self._boundary_vectors = (epoch, boundary)
                metrics = self.validate(boundary)
                self.history.append({"epoch": epoch - 1, "step": global_step, **metrics})
                log.info("epoch %d validation %s", epoch - 1, metrics)
            self._checkpoint(epoch, step, global_step)
        if bar is not None:
            bar.close()
        b.barrier()
        return self.history

    def _checkpoint(self, epoch: int, step: int, global_step: int) -> None:
        if self.backend.is_root:
            state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "epoch": epoch, "step": step, "global_step": global_step, "history": self.history}
            if self.hard_tables is not None and step > 0:  # mid-epoch: the epoch's hard-negative vectors
                state["hard_tables"] = self.hard_tables
            ckpt.save_checkpoint(self.run_dir, state)
        self.backend.barrier()

    def _hard_tables_for(self, epoch: int, step: int, state: dict | None) -> None:
        """The vectors "hard" negatives are scored with during ``epoch``: the run's ranking vectors
        (:meth:`embed_all`; rows L2-normalised for a cosine ranking) of the targets' node types from
        the model as of the epoch's first step, computed here at that step, or taken from the
        checkpoint a run resumes from mid-epoch (so a resumed run draws the same negatives)."""
        if step > 0 and state is not None and state.get("epoch") == epoch and state.get("step") == step:
            if "hard_tables" not in state:
                raise ValueError(f"negatives: 'hard' needs the epoch's scoring vectors, but the checkpoint of "
                                 f"epoch {epoch} step {step} in {self.run_dir} has none; resume from an epoch "
                                 f"boundary or start a new run")
            self.hard_tables = dict(state["hard_tables"])
            return
        cached, self._boundary_vectors = self._boundary_vectors, None
        # the previous epoch's validation embedded the same model state already (rank 0 only)
        vectors = (cached[1] if cached is not None and cached[0] == epoch
                   else self.embed_all(trained_node_types(self.targets)))  # both ends of every target
        vectors = {t: torch.from_numpy(v) for t, v in vectors.items()}
        if ranking_score(self.model_config) == "cosine":
            vectors = {t: torch.nn.functional.normalize(v, dim=1) for t, v in vectors.items()}
        self.hard_tables = vectors
        log.info("rank %d epoch %d: hard negatives scored with the model as of this epoch's start", self.backend.rank,
                 epoch)

    # ------------------------------------------------------------------ inference and validation
    @torch.no_grad()
    def embed_all(self, node_types=None, rank_slice: bool = False) -> dict[str, np.ndarray]:
        """Embeddings of every node of ``node_types`` (default: every modelled type,
        :func:`trained_node_types`), mini-batched over sampled neighbourhoods (fixed seeds:
        deterministic), layer by layer over full neighbourhoods (``inference: layerwise``) or one
        full propagation (``mode: full``).

        With ``rank_slice`` each rank computes only its contiguous slice of every type and the
        result holds ``(lo, hi, rows)`` per type instead of the full matrix; every rank must then call
        it (layer-wise inference assembles each layer with a collective). With
        ``model.popularity_prior`` the rows are the run's scoring vectors (one more column,
        :mod:`graphlake.training.scoring`).
        """
        self.model.eval()
        types = list(node_types or self.node_types)
        unknown = sorted(set(types) - set(self.node_types))
        if unknown:
            raise ValueError(f"node_types: {unknown} are in none of the run's edge types, so they have no "
                             f"embedding; expected a subset of {self.node_types}")
        if self.config.mode == "full":
            out = self._forward(self.full)
            return {t: self._scoring(t, out[t].cpu().numpy().astype(np.float32), 0) for t in types}
        exact = self._layerwise(collective=rank_slice) if self.config.inference == "layerwise" else None
        result = {}
        for t in types:
            ti = self.node_types.index(t)  # the type's own sampling seeds, whichever types are asked for
            n = self.snapshot.num_nodes(t)
            lo, hi = rank_rows(n, self.backend.rank, self.backend.world_size) if rank_slice else (0, n)
            if exact is not None:
                rows = [exact[t][lo:hi]]
            else:
                rows = []
                for start in range(lo, hi, self.config.inference_batch_size):
                    ids = torch.arange(start, min(hi, start + self.config.inference_batch_size))
                    batch = self.sampler.sample({t: ids}, generator=ckpt.generator(self.config.seed, 5, ti, start))
                    rows.append(self._forward(batch)[t].cpu())
            dim = self.model_config.hidden_dim
            mat = torch.cat(rows).numpy().astype(np.float32) if rows else np.zeros((0, dim), np.float32)
            mat = self._scoring(t, mat, lo)
            result[t] = (lo, hi, mat) if rank_slice else mat
        return result

    def _layerwise(self, collective: bool = False) -> dict[str, torch.Tensor]:
        """Every node's vector over its full neighbourhood (:mod:`graphlake.training.layerwise`). ``collective``
        (every rank calls it: ``embed_all(rank_slice=True)``): each rank computes its slice of every
        layer and the backend's ``allreduce_sum`` assembles it; else this rank computes all of it
        (validation runs on rank 0 alone, the hard-negative tables on each rank from its own cache)."""
        b = self.backend
        ranks = dict(rank=b.rank, world_size=b.world_size, allreduce_sum=b.allreduce_sum) if collective else {}
        return layerwise_embeddings(self.model, self.graph, self._encode, self.config.inference_batch_size,
                                    self.degrees, **ranks)

    def _scoring(self, node_type: str, rows: np.ndarray, lo: int) -> np.ndarray:
        """The exported vectors of rows ``lo..`` of ``node_type`` (:func:`graphlake.training.scoring.scoring_vectors`)."""
        degrees = self.prior_degrees.get(node_type)
        bias = (self.model.score_bias[node_type].detach().cpu().numpy()[lo:lo + len(rows)]
                if node_type in self.model.score_bias else None)
        return scoring_vectors(rows, node_type, self.model_config, self.prior_roles,
                               None if degrees is None else degrees[lo:lo + len(rows)], bias)

    def validate(self, embeddings: dict | None = None) -> dict:
        """Recall/NDCG@K on the held-out validation edges (their training edges masked)."""
        k = self.config.eval_k
        emb = embeddings or self.embed_all(trained_node_types(self.validation))
        out = {}
        for e, (src, dst) in self.validation.items():
            s_type, _, d_type = parse_edge_type(e)
            indptr, indices, _ = self.graph.csr(message_relations(e)[1])  # (d, rev_r, s): indexed by s
            m = ranking_metrics(emb[s_type], emb[d_type], src, dst, indptr, indices,
                                k=min(k, emb[d_type].shape[0]), score=ranking_score(self.model_config))
            out.update({f"val_{e}_{name}": v for name, v in m.items()})
        self.model.train()
        return out


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="train")


def write_metrics(run_dir: str, history: list[dict]) -> str:
    """``<run_dir>/metrics.jsonl``: one JSON object per step / validation."""
    path = TrainRun(run_dir).metrics_path
    with open(path, "w") as f:
        for row in history:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    return path
