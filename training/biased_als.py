"""Implicit-feedback ALS with user and item bias terms (the retrieval design's "Phase 3" option).

implicit has no bias terms and its solver cannot hold a factor column fixed, so this is a small
vectorised solver of the same objective plus biases:

    sum_ui c_ui (p_ui - x_u.y_i - b_u - b_i)^2 + reg (|x|^2 + |y|^2 + b_u^2 + b_i^2)

with implicit's conventions: c = alpha * |value| on stored cells (p = 1 when positive, 0 for a
dislike) and c = 1, p = 0 everywhere else. Each half-step solves the normal equations of all users
(or items) at once with a few warm-started conjugate-gradient steps, like implicit's CG solver;
the work per step is two sparse products over the stored cells, never a dense users x items matrix.

The result is stored as augmented factors, users [x, b_u, 1] and items [y, 1, b_i], so a score is
still one dot product and serving needs nothing new.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

_GATHER_CHUNK = 1 << 20  # stored cells per gather, bounding memory at about chunk x factors floats


def _row_dots(matrix: sp.csr_matrix, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """For each stored cell (u, i): left[u] . right[i]."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    out = np.empty(matrix.nnz, dtype=np.float32)
    for start in range(0, matrix.nnz, _GATHER_CHUNK):
        stop = start + _GATHER_CHUNK
        out[start:stop] = np.einsum("ij,ij->i", left[rows[start:stop]], right[matrix.indices[start:stop]])
    return out


def _half_step(
    conf: sp.csr_matrix,
    prefs: np.ndarray,
    solve: np.ndarray,
    fixed: np.ndarray,
    offset: np.ndarray,
    reg: float,
    cg_steps: int,
) -> None:
    """Improve `solve` (rows of conf) in place given `fixed` (columns) and a per-column offset.

    Normal equations per row u: (F^T C_u F + reg I) s_u = F^T C_u (p_u - offset).
    """
    gram = fixed.T @ fixed
    extra = conf.copy()
    extra.data = conf.data - 1.0  # c - 1 on stored cells: the part that differs from the all-ones base
    rhs_cells = conf.copy()
    rhs_cells.data = conf.data * (prefs - offset[conf.indices]) + offset[conf.indices]
    rhs = rhs_cells @ fixed - (fixed.T @ offset)[None, :]

    def apply(v: np.ndarray) -> np.ndarray:
        weights = extra.data * _row_dots(extra, v, fixed)
        weighted = sp.csr_matrix((weights, extra.indices, extra.indptr), shape=extra.shape)
        return v @ gram + reg * v + weighted @ fixed

    x = solve
    r = rhs - apply(x)
    p = r.copy()
    rs_old = np.einsum("ij,ij->i", r, r)
    for _ in range(cg_steps):
        ap = apply(p)
        denom = np.einsum("ij,ij->i", p, ap)
        step = np.divide(rs_old, denom, out=np.zeros_like(rs_old), where=denom > 1e-20)
        x += step[:, None] * p
        r -= step[:, None] * ap
        rs_new = np.einsum("ij,ij->i", r, r)
        beta = np.divide(rs_new, rs_old, out=np.zeros_like(rs_new), where=rs_old > 1e-20)
        p = r + beta[:, None] * p
        rs_old = rs_new


def biased_loss(
    conf: sp.csr_matrix, prefs: np.ndarray, users: np.ndarray, items: np.ndarray, reg: float
) -> float:
    """The objective above over all users x items, per cell (computed without a dense matrix)."""
    all_squares = float(np.sum((users.T @ users) * (items.T @ items)))
    scores = _row_dots(conf, users, items)
    stored = float(np.sum(conf.data * (prefs - scores) ** 2 - scores**2))
    penalty = reg * float(np.sum(users[:, :-1] ** 2) + np.sum(items[:, :-2] ** 2) + np.sum(items[:, -1] ** 2))
    return (all_squares + stored + penalty) / float(conf.shape[0] * conf.shape[1])


def _confidence_and_preference(signed: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """Signed confidences -> (|c| as a matrix, p = 1 where positive else 0), cell-aligned."""
    conf = signed.astype(np.float32)
    conf.sort_indices()
    prefs = (conf.data > 0).astype(np.float32)
    conf.data = np.abs(conf.data)
    return conf, prefs


def fit_biased(
    confidences: sp.csr_matrix,
    factors: int,
    regularization: float,
    iterations: int,
    *,
    random_state: int = 42,
    cg_steps: int = 3,
    callback: Callable[[int, float, float | None, np.ndarray, np.ndarray], None] | None = None,
    calculate_loss: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit on alpha-scaled confidences (negative = dislike). Returns augmented (users, items)."""
    conf_ui, prefs_ui = _confidence_and_preference(confidences.tocsr())
    conf_iu, prefs_iu = _confidence_and_preference(confidences.tocsr().T.tocsr())

    rng = np.random.default_rng(random_state)
    n_users, n_items = conf_ui.shape
    # Augmented layout: users [x, b_u, 1], items [y, 1, b_i].
    users = np.zeros((n_users, factors + 2), np.float32)
    items = np.zeros((n_items, factors + 2), np.float32)
    users[:, :factors] = rng.random((n_users, factors), dtype=np.float32) * 0.01
    items[:, :factors] = rng.random((n_items, factors), dtype=np.float32) * 0.01
    users[:, -1] = 1.0
    items[:, -2] = 1.0
    for iteration in range(iterations):
        start = time.perf_counter()
        # Users: solve [x, b_u] against items' [y, 1]; the item bias is a fixed offset.
        free_u = np.ascontiguousarray(users[:, :-1])
        _half_step(
            conf_ui,
            prefs_ui,
            free_u,
            np.ascontiguousarray(items[:, :-1]),
            items[:, -1].copy(),
            regularization,
            cg_steps,
        )
        users[:, :-1] = free_u
        # Items: solve [y, b_i] against users' [x, 1]; the user bias is a fixed offset.
        free_i = np.ascontiguousarray(np.concatenate([items[:, :factors], items[:, -1:]], axis=1))
        fixed_u = np.ascontiguousarray(np.concatenate([users[:, :factors], users[:, -1:]], axis=1))
        _half_step(conf_iu, prefs_iu, free_i, fixed_u, users[:, factors].copy(), regularization, cg_steps)
        items[:, :factors] = free_i[:, :factors]
        items[:, -1] = free_i[:, -1]
        loss = biased_loss(conf_ui, prefs_ui, users, items, regularization) if calculate_loss else None
        if callback is not None:
            callback(iteration, time.perf_counter() - start, loss, users, items)
    return users, items
