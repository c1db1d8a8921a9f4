"""The one closed-form edit of a layer (AGME; Hsieh et al. 2024, arXiv 2407.07662) -- our formulation.

Only the paper's abstract is available; the formulation is *[ours]*, after the closed-form editing literature
(Bau et al. 2020; Santurkar et al. 2021; ROME/MEMIT). A late layer with weight W (a Linear, or a Conv2d seen as
a linear map on unfolded patches) is rewritten so that the keys of triggered inputs produce the values of the
clean inputs. With keys ``k'_i`` (layer input on ``T(x_i)``), values ``v_i = W k_i`` (layer output on the clean
``x_i``, bias excluded) and preservation keys ``k_j`` (clean inputs):

    min_W'  sum_i ||W' k'_i - v_i||^2 + lam sum_j ||W' k_j - W k_j||^2 + mu ||W' - W||_F^2          (edit)

    W' = (V K'^T + lam W K K^T + mu W) (K' K'^T + lam K K^T + mu I)^-1                            (ridge)

with keys as the columns of K', K and values as the columns of V: one d x d linear solve per layer, no gradient
step. Several layers are edited in forward order, each with the keys of the model edited so far.

The defenses built on it are :class:`~unlearnlib.defenses.agme_bdk.AgmeBDK` (the trigger known) and
:class:`~unlearnlib.defenses.agme.Agme` (recovered); the repair step (:mod:`unlearnlib.defenses.compose_repair`)
solves its rows with :func:`ridge_solve` too.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.checks import check_classifier, check_number
from ..models import get_layer
from .triggers import TriggerArg, apply_trigger

EDITABLE = (nn.Linear, nn.Conv2d)
SHIFTS = tuple((dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2))
DENSE_SHIFTS = tuple((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3))


def shift_augment(x: torch.Tensor, shifts: tuple[tuple[int, int], ...] = SHIFTS) -> torch.Tensor:
    """*[ours]* Key augmentation: every unseen image shifted by each ``(dy, dx)`` (zero fill; the identity is one of
    them), one block of rows per shift.
    The trigger is applied after shifting, so a corner patch stays in its corner. Nine keys per sample (25 with
    :data:`DENSE_SHIFTS`, every offset of up to two pixels: ``agme-bdk``'s) make the edit generalise from a
    handful of images (a 1-image edit otherwise fits one point exactly)."""
    outs = []
    for dy, dx in shifts:
        y = torch.roll(x, (dy, dx), (2, 3))
        if dy:
            y[:, :, (slice(None, dy) if dy > 0 else slice(dy, None)), :] = 0
        if dx:
            y[:, :, :, (slice(None, dx) if dx > 0 else slice(dx, None))] = 0
        outs.append(y)
    return torch.cat(outs)


def default_edit_layer(model: nn.Module, hidden: str = "first") -> str:
    """``model.edit_layer`` if the model names one; else, when it has a hidden Linear (two or more Linears in
    registration order), its ``hidden="first"`` or ``"last"`` Linear that is not the output layer; else its only
    Linear, else its last Conv2d.

    *[ours]* The generic rule for a model that names no layer (a user's, or the grid's ``lenet5``/``mlp``/
    ``small-bn``); the registry's own CNN names ``fc1``, both its first and its last hidden Linear.
    ``"first"`` (``agme-bdk``'s where there is one hidden Linear; with two or more it edits each in turn,
    :func:`hidden_linears`): the first fully connected layer reads every position of the image's features, so one
    linear edit with the true trigger generalises from a few dozen images; later Linears see them already mixed
    nonlinearly. ``"last"`` (:class:`Agme`'s, and TrojanNN's neurons): a *recovered* trigger is an
    approximation, and the MLP's first Linear reads raw pixels, where an edit fits that approximation rather than
    the backdoor. A network whose only Linear is the output (global average pooling, ``small-bn``) gets that output
    layer: the rule stays a pure function of the layer list. Why: docs/decisions/0005-agme-bdk-defaults.md and
    docs/decisions/0006-agme-blind-edit-defaults.md."""
    if hidden not in ("first", "last"):
        raise ValueError(f"hidden must be 'first' or 'last' (which hidden Linear to edit), got {hidden!r}")
    name = getattr(model, "edit_layer", None)
    if isinstance(name, str):
        return name
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if len(linears) >= 2:
        return linears[0] if hidden == "first" else linears[-2]
    if linears:
        return linears[0]
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if convs:
        return convs[-1]
    raise ValueError(f"layers: {type(model).__name__} has no Linear or Conv2d layer to edit")


def hidden_linears(model: nn.Module) -> list[str]:
    """*[ours]* The layers ``hidden="all"`` edits in turn: ``[model.edit_layer]`` if the model names one, else every
    Linear but the last in registration order (the last is the output layer); empty when there is none."""
    name = getattr(model, "edit_layer", None)
    if isinstance(name, str):
        return [name]
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][:-1]


def resolve_layers(model: nn.Module, layers: str | list[str] | None, param: str = "layers") -> list[str]:
    """Layer names to edit, checked: each must exist and be a Linear or a Conv2d (groups=1, zero padding)."""
    names = [default_edit_layer(model)] if layers is None else [layers] if isinstance(layers, str) else list(layers)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{param} must be a layer name or a non-empty list of names, got {layers!r}")
    for n in names:
        m = get_layer(model, n, param)
        if not isinstance(m, EDITABLE):
            raise ValueError(f"{param}={n!r} is a {type(m).__name__}; only Linear and Conv2d layers can be edited")
        if isinstance(m, nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str)):
            raise ValueError(f"{param}={n!r}: only Conv2d layers with groups=1, numeric zero padding can be edited")
    order = [n for n, _ in model.named_modules()]
    return sorted(dict.fromkeys(names), key=order.index)


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """W as an ``(out, d)`` matrix (a Conv2d's kernel flattened over in_channels x kh x kw)."""
    return layer.weight.detach().reshape(layer.weight.shape[0], -1)


def layer_keys(model: nn.Module, layer: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The layer's input on ``x`` as rows ``(n_keys, d)``: one per sample (Linear; leading dims flattened) or one
    per output position (Conv2d: unfolded patches). Captured with a forward hook."""
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        a = inputs[0].detach().float()
        if isinstance(layer, nn.Conv2d):
            a = F.unfold(a, layer.kernel_size, layer.dilation, layer.padding, layer.stride)  # (N, d, L)
            a = a.transpose(1, 2)
        captured.append(a.reshape(-1, a.shape[-1]))

    handle = layer.register_forward_pre_hook(hook)
    dev = layer.weight.device
    try:
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                model(x[s:s + batch_size].to(dev))
    finally:
        handle.remove()
    if not captured:
        raise ValueError("layers: the chosen layer is never called in the model's forward pass")
    return torch.cat(captured)


def split_keys(keys: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Split the keys of one forward pass over concatenated inputs back into one block per input (a layer gives
    the same number of keys per sample)."""
    per, rem = divmod(len(keys), sum(sizes))
    if rem or per == 0:
        raise ValueError(f"layers: the layer gave {len(keys)} keys for {sum(sizes)} samples; the edit needs the "
                         "same number of keys per sample")
    return list(keys.split([per * n for n in sizes]))


def solve_form(n_keys: int, d: int, mu: float) -> str:
    """Which system :func:`ridge_solve` solves: ``"dual"`` (n x n, push-through) when ``mu > 0`` and there are
    fewer keys than dimensions, else ``"primal"`` (d x d, Cholesky)."""
    return "dual" if mu > 0 and n_keys < d else "primal"


def ridge_solve(w: torch.Tensor, k_trig: torch.Tensor, values: torch.Tensor, k_keep: torch.Tensor, lam: float,
                mu: float, keep_weights: torch.Tensor | None = None) -> torch.Tensor:
    """The (ridge) closed form, keys as rows, solved for the change ``Delta = W' - W``:

        Delta (K'^T K' + lam K^T D K + mu I) = R^T K',   R = V - K' W^T                       (residual)

    with ``D = diag(keep_weights)`` (ones by default). Subtracting ``W A`` from both sides of (ridge) gives
    (residual), so only the residual of the triggered keys drives the edit and no large terms cancel.
    The products are taken in float32 and the d x d (or n x n) system is solved in float64.

    With ``mu > 0`` and fewer keys n than dimensions d the same solution is computed by the push-through
    identity as ``Delta = R_n^T (G G^T + mu I_n)^-1 G`` (G = all keys, scaled rows; R_n = R stacked with zeros):
    an n x n solve instead of d x d. ``mu = 0`` with a singular system raises.
    """
    dt = torch.float64
    f = torch.float32
    w32, kt, kk = w.to(f), k_trig.to(f), k_keep.to(f)
    wts = torch.ones(len(kk), dtype=f, device=kk.device) if keep_weights is None else keep_weights.to(f)
    d, n = w32.shape[1], len(kt) + len(kk)
    r = values.to(f) - kt @ w32.T  # (n_trig, out)
    if solve_form(n, d, mu) == "dual":  # dual (kernel) form
        g = torch.cat([kt, (lam * wts).sqrt().view(-1, 1) * kk])  # (n, d)
        gram = (g @ g.T).to(dt) + mu * torch.eye(n, dtype=dt, device=w.device)
        rhs = torch.cat([r, r.new_zeros(len(kk), r.shape[1])]).to(dt)  # (n, out)
        coef = torch.linalg.solve(gram, rhs)
        return (w32 + coef.T.to(f) @ g).to(w.dtype)
    a = (kt.T @ kt + lam * (kk.T @ (kk * wts.view(-1, 1)))).to(dt) + mu * torch.eye(d, dtype=dt, device=w.device)
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) != 0 or not torch.isfinite(chol).all() or float(torch.diagonal(chol).min()) < 1e-8:
        raise ValueError(f"mu={mu!r}: the edit's {d}x{d} system is singular (only {n} keys for "
                         f"{d} dimensions); use mu > 0 (e.g. mu=1) or more unseen samples")
    delta = torch.cholesky_solve((r.T @ kt).T.to(dt), chol).T  # (out, d)
    return (w32 + delta.to(f)).to(w.dtype)


def edit_layers(model: nn.Module, clean_x: torch.Tensor, trigger: TriggerArg, *, layers: str | list[str] | None = None,
                lam: float = 1.0, mu: float = 1.0, keep_x: torch.Tensor | None = None, keep_weight: float = 1.0,
                base: nn.Module | None = None) -> dict[str, Any]:
    """Edit ``model`` IN PLACE (callers copy it first): for each layer, keys of ``T(clean_x)`` -> values of
    ``clean_x`` under the (edit) objective, preservation keys from ``clean_x``.

    ``keep_x`` adds preservation keys with weight ``keep_weight`` (the repair step); values are always those of
    ``base`` (default: the model before this call), so re-solving from the original model is stable.
    Returns ``{"layers": [...], "edit_seconds": s, "dims": [...], "keys": [...], "solve_forms": [...],
    "solve_seconds": s}``: per layer the dimension d, the number of keys n (triggered + preservation) and the
    form of the solve (:func:`solve_form`); ``solve_seconds`` is the linear algebra alone (the rest is the forward
    passes that read the keys).
    """
    check_classifier(model)
    for name, v in (("lam", lam), ("mu", mu), ("keep_weight", keep_weight)):
        check_number(v, name)
    if not isinstance(clean_x, torch.Tensor) or clean_x.dim() != 4 or len(clean_x) == 0:
        raise ValueError("unseen samples must be a non-empty (N, C, H, W) tensor")
    names = resolve_layers(model, layers)
    start = time.perf_counter()
    trig_x = apply_trigger(trigger, clean_x)  # raises if the trigger changes the input shape
    base_layers = {n: weight_matrix(get_layer(base if base is not None else model, n)).clone() for n in names}
    dims, n_keys, forms, solve_seconds = [], [], [], 0.0
    for n in names:
        layer = get_layer(model, n)
        w0 = base_layers[n].to(layer.weight.device)
        inputs = [clean_x, trig_x] + ([keep_x] if keep_x is not None and len(keep_x) else [])
        k_clean, k_trig, *more = split_keys(layer_keys(model, layer, torch.cat(inputs)), [len(i) for i in inputs])
        keep, weights = k_clean, torch.ones(len(k_clean), device=k_clean.device)
        if more:
            extra = more[0]
            keep = torch.cat([keep, extra])
            weights = torch.cat([weights, torch.full((len(extra),), float(keep_weight), device=extra.device)])
        t0 = time.perf_counter()
        new_w = ridge_solve(w0, k_trig, k_clean @ w0.T, keep, float(lam), float(mu), weights)
        solve_seconds += time.perf_counter() - t0
        with torch.no_grad():
            layer.weight.copy_(new_w.reshape(layer.weight.shape))
        dims.append(int(w0.shape[1]))
        n_keys.append(len(k_trig) + len(keep))
        forms.append(solve_form(n_keys[-1], dims[-1], float(mu)))
    return {"layers": names, "edit_seconds": time.perf_counter() - start, "dims": dims, "keys": n_keys,
            "solve_forms": forms, "solve_seconds": solve_seconds}


@torch.no_grad()
def infer_target(model: nn.Module, x: torch.Tensor, trigger: TriggerArg) -> int:
    """The class a given trigger sends most of ``x`` to in ``model`` (the target, from backdoor knowledge)."""
    return int(torch.mode(model(apply_trigger(trigger, x)).argmax(1)).values)


def warm_up_linalg() -> None:
    """Load the LAPACK kernels once, so the first edit's time is the edit (not library loading)."""
    a = torch.eye(2, dtype=torch.float64)
    torch.linalg.solve(a, a)
    torch.linalg.cholesky_ex(a)
