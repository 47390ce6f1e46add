"""A Two-Tower retrieval model in PyTorch, exported as numpy arrays for serving.

Why this shape:
- The **user tower** reads only the user's interaction history: a weighted mean of a learned
  item table `H` over their positive items, then a 2-layer MLP, L2-normalised. There is no user-id
  embedding, so serving can encode any user, a brand-new one included, from a list of
  (item row, weight) with a few numpy lines (`feature_store.user_tower.UserTower`) and no torch.
- The **item tower** is an item-id embedding, plus a linear projection of dense content features
  when they are given (so items share strength through their metadata), then a 2-layer MLP,
  L2-normalised. Item vectors go into the same inner-product indexes as ALS factors.
- **Leakage guard**: a training pair (user, target) pools the user's history *without* the target
  (a leave-one-out mean). Otherwise the cheapest solution is to recognise the target's own row in
  the pooled history, which scores perfectly in training and learns no taste at all.
- **Loss**: in-batch sampled softmax over the batch's positive items with the log-q correction
  (Yi et al., RecSys 2019): in-batch negatives are drawn in proportion to popularity, so without
  subtracting log q_j the model learns to push popular items down; with it the logits estimate the
  full softmax. Columns holding the row's own positive item elsewhere in the batch are masked, as
  they are not negatives.
- **History cap**: pooling costs O(history length) per pair, and heavy users dominate the pairs, so
  each user's history is capped at `max_history` items (largest weights first, ties by item index).
  The cap is part of the model: the exported embeddings and the numpy encoder apply the same rule,
  so a user encoded at serving time from the same history gets the same vector.
- **Early stopping** on validation NDCG@10 over a full-catalog ranking (the quantity served), with
  the best epoch's weights kept. Each epoch without improvement also halves the learning rate
  (`lr_decay`): on ML-1M validation NDCG plateaus within ~7 epochs at a constant rate, and the
  smaller steps then find a little more before patience runs out.
- **Determinism**: the seed drives torch's initialisation (in a forked RNG, so the caller's global
  RNG state is untouched), the numpy shuffles, and deterministic algorithms are enforced, so two
  fits on the same machine give bitwise-identical arrays.

Cost (ML-1M, 2 CPU cores, defaults): 15-20 ms per step of 1,024 pairs, 12-14 s per epoch, about
13 epochs (150-180 s) before early stopping. A batch's history bags are summed once per distinct
user (heavy users recur within a batch), the bag gradient is one sparse product (`_CpuBagSums`),
and the batch x batch softmax is fused by hand (`_InBatchSoftmax`); what remains is mostly the
matrix products and Adam over the two item tables.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from training.evaluation import top_k
from training.metrics import ranking_metrics
from training.splits import validation_split

Progress = Callable[[str], None]

USER_TOWER_KEYS = ("history_table", "w1", "b1", "w2", "b2")


@dataclass(frozen=True)
class TwoTowerParams:
    dim: int = 64  # output embedding size
    hidden: int = 128  # hidden width of each tower's MLP (and of the history table)
    epochs: int = 40  # upper bound; early stopping usually ends sooner
    batch_size: int = 1024
    learning_rate: float = 3e-3
    weight_decay: float = 1e-6
    temperature: float = 0.05
    patience: int = 3  # epochs without validation improvement before stopping
    max_history: int = 200  # largest-weight items pooled per user (bounds cost)
    validation_fraction: float = 0.1
    lr_decay: float = 0.5  # learning rate x this after each epoch without validation improvement
    seed: int = 42
    device: str = "cpu"  # "cuda" works when present, never required

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TwoTowerResult:
    params: TwoTowerParams
    user_embeddings: np.ndarray  # float32 users x dim, from each user's full (capped) history
    item_embeddings: np.ndarray  # float32 items x dim
    # float32 arrays for the numpy encoder, row-vector convention (see `export_user_tower`):
    # history_table (items x hidden), w1 (hidden x hidden), b1 (hidden), w2 (hidden x dim), b2 (dim)
    user_tower: dict[str, np.ndarray]
    history: list[dict[str, float]]  # per epoch: epoch, loss, validation_ndcg, validation_recall, seconds
    best_epoch: int  # 1-based
    seconds: float


# --------------------------------------------------------------------------------------------------
# Data preparation (numpy / scipy)


def _positives(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Only cells with weight > 0, as float32, sorted: a dislike is not something to pool or predict."""
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    m.data[~np.isfinite(m.data)] = 0.0
    m.data[m.data < 0] = 0.0
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _rows_of(matrix: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))


def _cap_mask(matrix: sp.csr_matrix, max_history: int) -> np.ndarray:
    """Which stored cells survive the per-user cap: the `max_history` largest weights per row,
    ties broken by the smaller item index (the same rule as `UserTower.encode`)."""
    rows = _rows_of(matrix)
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rank = np.empty(matrix.nnz, dtype=np.int64)
    rank[order] = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], np.diff(matrix.indptr))
    return rank < max_history


def _capped(matrix: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    rows = _rows_of(matrix)
    out = sp.csr_matrix(
        (matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape, dtype=np.float32
    )
    out.sort_indices()
    return out


def _without(matrix: sp.csr_matrix, remove: sp.csr_matrix) -> sp.csr_matrix:
    """`matrix` minus the cells stored in `remove` (whatever their values)."""
    n_items = matrix.shape[1]
    keys = _rows_of(matrix) * n_items + matrix.indices
    drop = _rows_of(remove) * n_items + remove.indices
    keep = ~np.isin(keys, drop)
    return _capped(matrix, keep)


def _union(train: sp.csr_matrix, extra: sp.csr_matrix) -> sp.csr_matrix:
    """Train's cells with their own weights, plus the cells only `extra` has (with its weights)."""
    only_extra = _without(extra, train)
    out = (train + only_extra).tocsr()
    out.sort_indices()
    return sp.csr_matrix(out, dtype=np.float32)


def _bags(history: sp.csr_matrix, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EmbeddingBag inputs for `users`' rows of `history`: item indices, offsets, weights."""
    starts = history.indptr[users]
    lengths = history.indptr[users + 1] - starts
    offsets = np.zeros(len(users), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    total = int(lengths.sum())
    positions = np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lengths)
    return history.indices[positions].astype(np.int64), offsets, history.data[positions]


@dataclass(frozen=True)
class _Pairs:
    """The training pairs (every positive cell) and the capped histories they are pooled from."""

    history: sp.csr_matrix  # users x items: positive weights, at most max_history per user
    users: np.ndarray  # int64, one per pair
    items: np.ndarray  # int64, the pair's target item
    sub: np.ndarray  # float32: the target's weight where the cap kept it in the history, else 0
    count: np.ndarray  # per user: items in the capped history
    wsum: np.ndarray  # float32 per user: their weight sum

    @classmethod
    def build(cls, positives: sp.csr_matrix, max_history: int) -> _Pairs:
        kept = _cap_mask(positives, max_history)
        history = _capped(positives, kept)
        return cls(
            history=history,
            users=_rows_of(positives),
            items=positives.indices.astype(np.int64),
            sub=np.where(kept, positives.data, 0.0).astype(np.float32),
            count=np.diff(history.indptr),
            wsum=np.asarray(history.sum(axis=1), np.float32).ravel(),
        )


# --------------------------------------------------------------------------------------------------
# The model


class _CpuBagSums(torch.autograd.Function):
    """`EmbeddingBag(mode="sum")` forward, with the table's gradient as one sparse-matrix product.

    The gradient of bag sums `S @ H` (S: users x items, the bag weights) is `Sᵀ @ grad`. torch's
    CPU EmbeddingBag backward sorts and accumulates the ~150k bag entries of an ML-1M batch and
    takes about 7 ms, the largest single cost of a step; scipy's sequential CSC product does the
    same sum in about 2.5 ms, deterministically (one pass, fixed order).
    """

    @staticmethod
    def forward(
        ctx: Any, table: torch.Tensor, items: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        ctx.bags = (items, offsets, weights, table.shape[0])
        return nn.functional.embedding_bag(items, table, offsets, mode="sum", per_sample_weights=weights)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        items, offsets, weights, n_rows = ctx.bags
        indptr = np.append(offsets.numpy(), len(items))
        bags = sp.csr_matrix((weights.numpy(), items.numpy(), indptr), shape=(len(offsets), n_rows))
        table_grad = np.ascontiguousarray(bags.T @ grad.numpy(), dtype=np.float32)
        return torch.from_numpy(table_grad), None, None, None


class _TwoTower(nn.Module):
    def __init__(self, n_items: int, params: TwoTowerParams, n_features: int) -> None:
        super().__init__()
        h = params.hidden
        self.history = nn.EmbeddingBag(n_items, h, mode="sum")
        self.user_mlp1 = nn.Linear(h, h)
        self.user_mlp2 = nn.Linear(h, params.dim)
        self.item_ids = nn.Embedding(n_items, h)
        self.item_features = nn.Linear(n_features, h) if n_features else None
        self.item_mlp1 = nn.Linear(h, h)
        self.item_mlp2 = nn.Linear(h, params.dim)
        # Small tables: the MLP's first layer sees sums of them, and the unit-norm output makes the
        # overall scale irrelevant except for how fast Adam moves it.
        nn.init.normal_(self.history.weight, std=0.1)
        nn.init.normal_(self.item_ids.weight, std=0.1)

    def pooled_sums(self, items: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Weighted sums of history rows per user (the bag), with a fast backward on a CPU."""
        if torch.is_grad_enabled() and self.history.weight.device.type == "cpu":
            out: torch.Tensor = _CpuBagSums.apply(self.history.weight, items, offsets, weights)
            return out
        return self.history(items, offsets, per_sample_weights=weights)

    def user_head(self, pooled: torch.Tensor) -> torch.Tensor:
        u = self.user_mlp2(torch.relu(self.user_mlp1(pooled)))
        return nn.functional.normalize(u, dim=1)

    def encode_items(self, items: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        x = self.item_ids(items)
        if self.item_features is not None and features is not None:
            x = x + self.item_features(features[items])
        v = self.item_mlp2(torch.relu(self.item_mlp1(x)))
        return nn.functional.normalize(v, dim=1)


@contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic algorithms for the duration of a fit, the caller's setting restored after.

    On CUDA some kernels (cuBLAS without CUBLAS_WORKSPACE_CONFIG, scatter-adds) have no
    deterministic variant; there it warns instead of failing, since a GPU is an option, not a need.
    """
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def export_user_tower(model: _TwoTower) -> dict[str, np.ndarray]:
    """The user tower as float32 numpy arrays, row-vector convention (the transpose of torch's
    `Linear.weight`), so serving computes `relu(pooled @ w1 + b1) @ w2 + b2`."""

    def arr(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))

    return {
        "history_table": arr(model.history.weight),
        "w1": arr(model.user_mlp1.weight.T),
        "b1": arr(model.user_mlp1.bias),
        "w2": arr(model.user_mlp2.weight.T),
        "b2": arr(model.user_mlp2.bias),
    }


def save_user_tower(result: TwoTowerResult, path: Path) -> None:
    """Write the user tower as an `.npz` (no pickle) that `UserTower.load` reads.

    `max_history` travels with the weights: the cap is part of how a user is encoded.
    Written through a file handle so `path` is used exactly (np.savez would append `.npz`).
    """
    arrays: dict[str, Any] = {k: np.asarray(result.user_tower[k], np.float32) for k in USER_TOWER_KEYS}
    arrays["max_history"] = np.asarray(result.params.max_history, np.int64)
    with Path(path).open("wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)


# --------------------------------------------------------------------------------------------------
# Fitting


class _Encoder:
    """Full-table inference: every user from a (capped) history, every item, in chunks."""

    def __init__(self, model: _TwoTower, device: torch.device, features: torch.Tensor | None) -> None:
        self.model, self.device, self.features = model, device, features

    @torch.inference_mode()
    def users(self, history: sp.csr_matrix, chunk: int = 4096) -> np.ndarray:
        """Rows of users without any positive history are left at zero (serving returns None)."""
        n_users = history.shape[0]
        out = np.zeros((n_users, self.model.user_mlp2.out_features), np.float32)
        has = np.flatnonzero(np.diff(history.indptr) > 0)
        for start in range(0, len(has), chunk):
            users = has[start : start + chunk]
            items, offsets, weights = _bags(history, users)
            sums = self.model.pooled_sums(
                torch.from_numpy(items).to(self.device),
                torch.from_numpy(offsets).to(self.device),
                torch.from_numpy(weights).to(self.device),
            )
            wsum = torch.from_numpy(np.asarray(history[users].sum(axis=1), np.float32)).to(self.device)
            out[users] = self.model.user_head(sums / wsum).cpu().numpy()
        return out

    @torch.inference_mode()
    def items(self, n_items: int, chunk: int = 65_536) -> np.ndarray:
        parts = []
        for start in range(0, n_items, chunk):
            ids = torch.arange(start, min(start + chunk, n_items), device=self.device)
            parts.append(self.model.encode_items(ids, self.features).cpu().numpy())
        return np.concatenate(parts).astype(np.float32, copy=False)


def _validate(
    encoder: _Encoder, history: sp.csr_matrix, seen: sp.csr_matrix, validation: sp.csr_matrix, k: int = 10
) -> tuple[float, float]:
    """NDCG@k and Recall@k of a full-catalog ranking for users with validation items, their
    training items excluded (the same protocol as `evaluate_ranking`)."""
    users = np.flatnonzero(np.diff(validation.indptr) > 0)
    user_emb = encoder.users(history)
    item_emb = encoder.items(history.shape[1])
    recs = top_k(user_emb, item_emb, users, k, exclude=seen)
    m = ranking_metrics(recs, validation[users], n_items=history.shape[1])
    return m.ndcg, m.recall


def fit_two_tower(
    train: sp.csr_matrix,
    params: TwoTowerParams = TwoTowerParams(),
    item_features: np.ndarray | None = None,
    validation: sp.csr_matrix | None = None,
    progress: Progress | None = None,
) -> TwoTowerResult:
    """Fit on the positive cells of `train`, early-stopping on `validation` NDCG@10.

    `validation` defaults to a per-user holdout of `train` (`validation_split`); given explicitly,
    its cells are removed from the training pairs either way. The returned user embeddings pool
    each user's whole history, training plus validation cells, since serving sees everything the
    user did; the best epoch's weights are the ones exported.
    """
    start = time.perf_counter()
    say = progress or (lambda _: None)
    n_items = train.shape[1]
    train_pos = _positives(sp.csr_matrix(train))
    if validation is None:
        parts = validation_split(train_pos, params.validation_fraction, seed=params.seed)
        valid = _positives(parts.test)
    else:
        if validation.shape != train.shape:
            raise ValueError(f"validation has shape {validation.shape}, train has {train.shape}")
        valid = _positives(sp.csr_matrix(validation))
    fit_pos = _without(train_pos, valid)
    if fit_pos.nnz == 0:
        raise ValueError("no positive training cells left to fit a Two-Tower model on")
    full_pos = _union(train_pos, valid)
    features = None
    if item_features is not None:
        item_features = np.asarray(item_features, np.float32)
        if item_features.ndim != 2 or item_features.shape[0] != n_items:
            raise ValueError(f"item_features must be {n_items} x f, got shape {item_features.shape}")

    device = torch.device(params.device)
    pairs = _Pairs.build(fit_pos, params.max_history)
    full_hist = _capped(full_pos, _cap_mask(full_pos, params.max_history))
    # q_j: item j's share of the training pairs, i.e. how often it shows up as an in-batch negative.
    counts = np.bincount(pairs.items, minlength=n_items)
    log_q = np.log(np.maximum(counts, 1) / len(pairs.items)).astype(np.float32)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), _deterministic(device):
        torch.manual_seed(params.seed)
        rng = np.random.default_rng(params.seed)
        if item_features is not None:
            features = torch.from_numpy(item_features).to(device)
        model = _TwoTower(n_items, params, 0 if item_features is None else item_features.shape[1]).to(device)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay, foreach=True
        )
        encoder = _Encoder(model, device, features)
        log_q_t = torch.from_numpy(log_q).to(device)
        has_validation = valid.nnz > 0
        history: list[dict[str, float]] = []
        best = {"ndcg": -np.inf, "epoch": 0, "bad": 0}
        best_state: dict[str, torch.Tensor] | None = None

        for epoch in range(1, params.epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            order = rng.permutation(len(pairs.items))
            total_loss = 0.0
            for lo in range(0, len(order), params.batch_size):
                batch = order[lo : lo + params.batch_size]
                loss = _step(model, optimizer, pairs, batch, log_q_t, features, params.temperature, device)
                total_loss += loss * len(batch)
            model.eval()
            if has_validation:
                ndcg, recall = _validate(encoder, pairs.history, fit_pos, valid)
            else:
                ndcg, recall = float("nan"), float("nan")
            record = {
                "epoch": float(epoch),
                "loss": total_loss / len(order),
                "validation_ndcg": ndcg,
                "validation_recall": recall,
                "seconds": time.perf_counter() - epoch_start,
            }
            history.append(record)
            say(
                f"  epoch {epoch}: loss {record['loss']:.4f}, validation NDCG@10 {ndcg:.4f}, "
                f"Recall@10 {recall:.4f} ({record['seconds']:.1f}s)"
            )
            if not has_validation or ndcg > best["ndcg"]:
                best.update(ndcg=ndcg, epoch=epoch, bad=0)
                best_state = copy.deepcopy(model.state_dict())
            else:
                best["bad"] += 1
                if best["bad"] >= params.patience:
                    say(f"  early stop: best epoch {best['epoch']} (NDCG@10 {best['ndcg']:.4f})")
                    break
                for group in optimizer.param_groups:
                    group["lr"] *= params.lr_decay

        assert best_state is not None
        model.load_state_dict(best_state)
        model.eval()
        user_embeddings = encoder.users(full_hist)
        item_embeddings = encoder.items(n_items)
        tower = export_user_tower(model)

    return TwoTowerResult(
        params=params,
        user_embeddings=user_embeddings,
        item_embeddings=item_embeddings,
        user_tower=tower,
        history=history,
        best_epoch=int(best["epoch"]),
        seconds=time.perf_counter() - start,
    )


class _InBatchSoftmax(torch.autograd.Function):
    """Mean in-batch softmax cross-entropy of `u @ v.T - log_q` (positives on the diagonal), the
    columns that repeat a row's own positive item elsewhere in the batch masked out.

    Written by hand because the batch x batch matrix grows as B² and dominates a CPU step from
    B = 2048 up: autograd's generic chain (matmul, bias, mask, log_softmax, nll) allocates and
    fills it about ten times. Here it is computed once, turned into the softmax in place, and
    reused in place as the gradient `(softmax - I) / B` (half the step time at B = 4096).
    """

    @staticmethod
    def forward(
        ctx: Any, u: torch.Tensor, v: torch.Tensor, log_q: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        logits = u @ v.T
        logits.sub_(log_q[None, :])
        positive = logits.diagonal().clone()
        logits.masked_fill_(targets[None, :] == targets[:, None], float("-inf"))
        logits.diagonal().copy_(positive)
        top = logits.amax(dim=1, keepdim=True)
        probs = logits.sub_(top).exp_()
        total = probs.sum(dim=1, keepdim=True)
        probs.div_(total)
        # log-sum-exp minus the positive's logit, per row
        loss = (top.squeeze(1) + total.squeeze(1).log() - positive).mean()
        ctx.save_for_backward(u, v)
        ctx.probs = probs  # not saved_tensors: backward reuses it in place, so it runs once only
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        u, v = ctx.saved_tensors
        probs = ctx.probs
        if probs is None:
            raise RuntimeError("the in-batch softmax backward runs once (its buffer is reused in place)")
        ctx.probs = None
        probs.diagonal().sub_(1.0)
        probs.mul_(grad / probs.shape[0])
        return probs @ v, probs.T @ u, None, None


def _leave_one_out_pooled(
    model: _TwoTower, pairs: _Pairs, batch: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled histories for the pairs `batch`, each without its own target, and the targets.

    Bags are summed once per distinct user in the batch, then the target's row is subtracted:
    (Σ w_i H[i] - w_t H[t]) / (Σ w_i - w_t). A user whose only pooled item is the target gets a
    zero vector (the tower's "no history" input).
    """
    users, items, sub = pairs.users[batch], pairs.items[batch], pairs.sub[batch]
    unique, inverse = np.unique(users, return_inverse=True)
    bag_items, offsets, bag_weights = _bags(pairs.history, unique)
    targets = torch.from_numpy(items).to(device)
    sums = model.pooled_sums(
        torch.from_numpy(bag_items).to(device),
        torch.from_numpy(offsets).to(device),
        torch.from_numpy(bag_weights).to(device),
    )
    sub_t = torch.from_numpy(sub).to(device)
    pooled = sums[torch.from_numpy(inverse).to(device)] - sub_t[:, None] * model.history.weight[targets]
    remaining = pairs.count[users] - (sub > 0)
    denom = np.where(remaining > 0, pairs.wsum[users] - sub, 1.0)
    scale = np.where(remaining > 0, 1.0 / denom, 0.0).astype(np.float32)
    return pooled * torch.from_numpy(scale).to(device)[:, None], targets


def _step(
    model: _TwoTower,
    optimizer: torch.optim.Optimizer,
    pairs: _Pairs,
    batch: np.ndarray,
    log_q: torch.Tensor,
    features: torch.Tensor | None,
    temperature: float,
    device: torch.device,
) -> float:
    """One Adam step on the pairs `batch`; returns the mean loss."""
    pooled, targets = _leave_one_out_pooled(model, pairs, batch, device)
    u = model.user_head(pooled)
    v = model.encode_items(targets, features)
    loss = _InBatchSoftmax.apply(u / temperature, v, log_q[targets], targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())
