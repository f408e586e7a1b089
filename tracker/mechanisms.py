"""What massive activations do, measured in the walk's own forward pass.

Three opt-in measurements beside the block statistics of :mod:`massdyn.tracker.measure`,
each a context manager whose hooks live exactly as long as its ``with`` block:

- **Attention sinks** (:class:`SinkRecorder`): per layer and head, the mean over sequences
  and over query positions ``q >= 1`` of the attention probability from ``q`` to key 0,
  after the causal mask and any sliding window (the mask transformers builds). Gu et al.
  (ICLR 2025) call a head a sink head when that share exceeds :data:`SINK_EPSILON`. The
  probability on key 0 is ``exp(s_q0 - logsumexp_k s_qk)``: it needs each row's
  log-sum-exp, never the probability matrix, so the model keeps its own attention kernel
  (SDPA, flash) for its output and the recorder adds one pass of ``q k^T`` scores, chunked
  over queries, in float32. It wraps the model's attention function through transformers'
  ``AttentionInterface`` (a registered implementation that calls the model's own one
  first), so a family whose attention bypasses that interface, or one with learned sink
  logits, is refused rather than measured wrongly. The recorder also keeps the norm of
  position 0's hidden state after each block (the token sinks form on).
- **Super weights** (:class:`SuperWeightRecorder`, Yu et al. 2024): per layer, the MLP
  down-projection's largest ``|output|`` over every sequence and token, the input dim with
  the largest ``|input|`` at that token, and the weight joining them (``W[row, col]``,
  row = output dim, col = input dim). The down-projection's name per family is data
  (``data/architectures.json``, ``down_proj``).
- **Interventions** (:func:`intervene`): in block ``l``'s output, the entries at each
  sequence's recorded top-3 (token, dim) of that block are set to 0 (``zero``) or to the
  mean of the same dim over the sequence's positions that hold none of its recorded
  entries (``mean``), the rest of the model runs, and the mean next-token cross-entropy
  over all positions of all sequences is compared with the unchanged model's. Sun et al.
  (2024) find mean substitution harmless and zeroing catastrophic on trained models.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import torch
from torch import nn

from massdyn.data import read_json
from massdyn.tracker.blocks import base_model, block_hidden, decoder_blocks, submodule
from massdyn.tracker.config import SINK_EPSILON, Mechanisms
from massdyn.tracker.measure import Hooks, measure

SPIKE_FACTOR = 10.0  # a layer's down-projection spike "stands out" above this x the median
QUERY_CHUNK = 256  # query rows of scores held at once by the sink recorder
MODES = ("zero", "mean")
ATTENTION_COLUMNS = ("layer", "head", "sink_share", "pos0_norm")
SUPERWEIGHT_COLUMNS = (
    "layer",
    "seq",
    "token",
    "row",
    "col",
    "weight",
    "output",
    "input",
    "stands_out",
)
INTERVENTION_COLUMNS = ("layer", "mode", "loss_base", "loss")


class MechanismError(ValueError):
    """A mechanism cannot be measured exactly for this model (the message says why)."""


# --------------------------------------------------------------------------- sinks


def key0_probability(
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float | None,
    softcap: float | None = None,
    chunk: int = QUERY_CHUNK,
) -> torch.Tensor:
    """The attention probability from every query to key position 0, exactly.

    Args:
        query: ``(batch, heads, q, d)``, after rotary embeddings.
        key: ``(batch, kv_heads, k, d)``; kv heads are repeated to the query heads (GQA).
        mask: transformers' attention mask for this call: None (causal, queries aligned to
            the last keys), boolean (True = attend) or additive float, broadcastable to
            ``(batch, heads, q, k)``.
        scaling: The score scale (default ``d ** -0.5``).
        softcap: Gemma-style logit soft-capping, if the model uses it.
        chunk: Query rows of scores held at once.

    Returns:
        ``(batch, heads, q)`` float32 probabilities.
    """
    b, h, q_len, d = query.shape
    if key.shape[1] != h:
        key = key.repeat_interleave(h // key.shape[1], dim=1)
    k_len = key.shape[2]
    scale = d**-0.5 if scaling is None else scaling
    keys = key.float().transpose(-1, -2)
    out = []
    for start in range(0, q_len, chunk):
        stop = min(start + chunk, q_len)
        scores = (query[:, :, start:stop].float() @ keys) * scale
        if softcap:
            scores = torch.tanh(scores / softcap) * softcap
        if mask is None:
            rows = torch.arange(start, stop, device=query.device)[:, None] + (k_len - q_len)
            allowed = torch.arange(k_len, device=query.device)[None, :] <= rows
            scores = scores.masked_fill(~allowed, float("-inf"))
        elif mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask[..., start:stop, :k_len], float("-inf"))
        else:
            scores = scores + mask[..., start:stop, :k_len].float()
        out.append(torch.exp(scores[..., 0] - torch.logsumexp(scores, dim=-1)))
    return torch.cat(out, dim=-1)


_RECORDING: list[SinkRecorder] = []  # the recorder whose with block is open
_REGISTERED: set[str] = set()


def _sink_attention(module, query, key, value, attention_mask, *args, **kwargs):
    recorder = _RECORDING[-1]
    out = recorder.inner(module, query, key, value, attention_mask, *args, **kwargs)
    recorder.add(module, query, key, attention_mask, kwargs)
    return out


def _register(implementation: str) -> str:
    """The name of the sink-recording implementation wrapping ``implementation``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    name = f"massdyn_sinks_{implementation}"
    if name not in _REGISTERED:
        AttentionInterface.register(name, _sink_attention)
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[implementation])
        _REGISTERED.add(name)
    return name


class SinkRecorder(Hooks):
    """Records the sink share of every head and the norm of position 0, during forwards.

    Use as a context manager around forward passes; then :meth:`table` has one row per
    (layer, head) with ``sink_share`` (mean over sequences and queries ``q >= 1``) and
    ``pos0_norm`` (the layer's mean over sequences of ``||h_0||``, the same on each of
    its heads' rows).

    Raises:
        MechanismError: on entering, for a family whose attention does not go through
            transformers' attention interface.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self._blocks = decoder_blocks(model)
        self._layer_of = {id(m): i for i, b in enumerate(self._blocks) for m in b.modules()}
        self._sums: dict[int, torch.Tensor] = {}
        self._count: dict[int, int] = {}
        self._norms: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(self._blocks))}
        self._previous: str | None = None
        self.inner = None

    def _resolve_inner(self, implementation: str):
        from transformers import AttentionInterface

        if implementation != "eager":
            return AttentionInterface()[implementation]
        # Eager attention is each modeling file's own function, not in the interface.
        module = sys.modules.get(type(self._blocks[0]).__module__)
        inner = getattr(module, "eager_attention_forward", None)
        if inner is None:
            raise MechanismError(
                f"--attention: {type(self.model).__name__} runs eager attention of its own; "
                "load it with attn_implementation='sdpa'"
            )
        return inner

    def add(self, module, query, key, mask, kwargs) -> None:
        """Accumulate one attention call's key-0 probabilities (called by the wrapper)."""
        if kwargs.get("s_aux") is not None or kwargs.get("sinks") is not None:
            raise MechanismError(
                "--attention: this family adds learned sink logits to the softmax; its sink "
                "share is not measured"
            )
        layer = self._layer_of.get(id(module))
        if layer is None:
            return
        p0 = key0_probability(query, key, mask, kwargs.get("scaling"), kwargs.get("softcap"))
        # Query 0 attends only to key 0: its probability 1 says nothing about sinks.
        share = p0[:, :, 1:].mean(dim=-1) if p0.shape[-1] > 1 else p0[:, :, :0].sum(-1)
        self._sums[layer] = self._sums.get(layer, 0) + share.sum(dim=0)
        self._count[layer] = self._count.get(layer, 0) + share.shape[0]

    def _norm_hook(self, layer: int):
        def fn(module, inputs, output):
            h = block_hidden(output)
            self._norms[layer].append(h[:, 0].float().norm(dim=-1))

        return fn

    def __enter__(self) -> SinkRecorder:
        config = self.model.config
        if not getattr(self.model, "_supports_attention_backend", False):
            raise MechanismError(
                f"--attention: {config.model_type} computes attention outside transformers' "
                "attention interface; its sink share cannot be recorded exactly (leave out "
                "--attention for this family)"
            )
        self._previous = config._attn_implementation or "eager"
        self.inner = self._resolve_inner(self._previous)
        _RECORDING.append(self)
        self.model.set_attn_implementation(_register(self._previous))
        return super().__enter__()

    def _attach(self) -> list:
        return [b.register_forward_hook(self._norm_hook(i)) for i, b in enumerate(self._blocks)]

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.model.set_attn_implementation(self._previous)
        _RECORDING.remove(self)

    def table(self) -> pd.DataFrame:
        """Rows ``layer, head, sink_share, pos0_norm``."""
        rows = []
        for layer in sorted(self._sums):
            shares = (self._sums[layer] / self._count[layer]).cpu().numpy()
            norm = float(torch.cat(self._norms[layer]).mean()) if self._norms[layer] else np.nan
            rows += [(layer, head, float(s), norm) for head, s in enumerate(shares)]
        return pd.DataFrame(rows, columns=list(ATTENTION_COLUMNS))


def sink_metric(attention: pd.DataFrame, epsilon: float = SINK_EPSILON) -> pd.DataFrame:
    """Gu et al.'s Sink metric per layer: the share of heads with ``sink_share > epsilon``."""
    keys = [c for c in ("model", "step", "layer") if c in attention.columns]
    return (
        attention.assign(sink=attention["sink_share"] > epsilon)
        .groupby(keys, as_index=False)["sink"]
        .mean()
        .rename(columns={"sink": "sink_metric"})
    )


# --------------------------------------------------------------------------- super weights


def down_projections(model: nn.Module) -> list[nn.Module]:
    """Each decoder block's MLP down-projection, by the family's name in ``data/``.

    Raises:
        MechanismError: for a family whose down-projection ``data/architectures.json``
            does not name.
    """
    model_type = model.config.model_type
    family = read_json("architectures.json")["families"].get(model_type, {})
    path = family.get("down_proj")
    if path is None:
        raise MechanismError(
            f"--super-weights: no down-projection is named for model type {model_type!r}; "
            'add "down_proj" to its entry in data/architectures.json'
        )
    found = []
    for block in decoder_blocks(model):
        module = submodule(block, path)
        if not isinstance(module, nn.Module) or not hasattr(module, "weight"):
            raise MechanismError(
                f"--super-weights: {model_type} blocks have no module {path!r} with a weight; "
                "fix its down_proj in data/architectures.json"
            )
        found.append(module)
    return found


class SuperWeightRecorder(Hooks):
    """Forward hooks on each down-projection that keep its largest output spike.

    Per batch and layer one small tensor stays on the device (value, sequence, token,
    output dim, input dim, both activations, the weight: GPT-2's Conv1D stores ``W``
    transposed); :meth:`table` reduces them with one copy.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self._modules = down_projections(model)
        self._parts: list[list[torch.Tensor]] = [[] for _ in self._modules]
        self._seen: list[int] = [0 for _ in self._modules]

    def _hook(self, layer: int):
        def fn(module, inputs, output):
            x, y = inputs[0].detach(), output.detach()
            b, t, d = y.shape
            flat = y.abs().reshape(-1).argmax()
            seq, rest = torch.div(flat, t * d, rounding_mode="floor"), flat % (t * d)
            token, row = torch.div(rest, d, rounding_mode="floor"), rest % d
            x_at = x[seq, token]
            col = x_at.abs().argmax()
            w = module.weight
            weight = w[col, row] if type(module).__name__ == "Conv1D" else w[row, col]
            part = torch.stack(
                [
                    y[seq, token, row].abs().float(),
                    (seq + self._seen[layer]).float(),
                    token.float(),
                    row.float(),
                    col.float(),
                    y[seq, token, row].float(),
                    x_at[col].float(),
                    weight.detach().float(),
                ]
            )
            self._parts[layer].append(part.double())
            self._seen[layer] += b

        return fn

    def _attach(self) -> list:
        return [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self._modules)]

    def table(self) -> pd.DataFrame:
        """Rows of :data:`SUPERWEIGHT_COLUMNS`, one per layer."""
        layers = [i for i, p in enumerate(self._parts) if p]
        if not layers:
            return pd.DataFrame(columns=list(SUPERWEIGHT_COLUMNS))
        stacked = torch.stack([torch.stack(self._parts[i]) for i in layers]).cpu().numpy()
        rows = []
        for layer, parts in zip(layers, stacked, strict=True):
            best = parts[int(np.argmax(parts[:, 0]))]
            _, seq, token, row, col, out, inp, weight = best
            rows.append(
                {
                    "layer": layer,
                    "seq": int(seq),
                    "token": int(token),
                    "row": int(row),
                    "col": int(col),
                    "weight": float(weight),
                    "output": float(out),
                    "input": float(inp),
                }
            )
        table = pd.DataFrame(rows)
        spike = table["output"].abs()
        table["stands_out"] = spike > SPIKE_FACTOR * spike.median()
        return table[list(SUPERWEIGHT_COLUMNS)]


# --------------------------------------------------------------------------- interventions


def check_layers(layers, n_layers: int) -> tuple[int, ...]:
    """The layers to intervene on (every layer for None), each checked against the model.

    Raises:
        MechanismError: naming a layer past the model and the valid range.
    """
    chosen = tuple(range(n_layers)) if layers is None else tuple(layers)
    bad = [layer for layer in chosen if not 0 <= layer < n_layers]
    if bad:
        raise MechanismError(
            f"--interventions: layer {bad[0]} is past the model, which has layers 0 to "
            f"{n_layers - 1}"
        )
    return chosen


def _positions(table: pd.DataFrame, layer: int, first_seq: int, n: int) -> list[list[tuple]]:
    """Each sequence's recorded top-k (token, dim) pairs of ``layer``, for a batch."""
    rows = table[table["layer"] == layer].set_index("seq")
    k = sum(1 for c in table.columns if c.startswith("top") and c.endswith("_token"))
    return [
        [
            (int(rows.at[s, f"top{i}_token"]), int(rows.at[s, f"top{i}_dim"]))
            for i in range(1, k + 1)
        ]
        for s in range(first_seq, first_seq + n)
    ]


def _substitute(h: torch.Tensor, positions: list[list[tuple]], mode: str) -> torch.Tensor:
    """``h`` with each sequence's recorded entries zeroed or replaced by their dim's mean."""
    h = h.clone()
    for seq, pairs in enumerate(positions):
        if mode == "zero":
            for token, dim in pairs:
                h[seq, token, dim] = 0
            continue
        for dim in {d for _, d in pairs}:
            recorded = [t for t, d in pairs if d == dim]
            keep = torch.ones(h.shape[1], dtype=torch.bool, device=h.device)
            keep[recorded] = False
            # With no other position (a one-token sequence), the mean is left undefined: 0.
            mean = h[seq, keep, dim].mean() if keep.any() else h.new_zeros(())
            h[seq, recorded, dim] = mean
    return h


def _loss(model: nn.Module, ids: torch.Tensor) -> float:
    """Sum of next-token cross-entropies over every position of ``ids``."""
    logits = model(input_ids=ids, use_cache=False).logits
    loss = nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten(), reduction="sum"
    )
    return float(loss)


@torch.inference_mode()
def intervene(
    model: nn.Module,
    input_ids,
    measured: pd.DataFrame,
    layers=None,
    batch_size: int = 1,
    modes: tuple[str, ...] = MODES,
) -> pd.DataFrame:
    """The loss with each layer's recorded top-k entries zeroed or mean-substituted.

    Args:
        model: A transformers causal LM (with its LM head) in eval mode.
        input_ids: ``(n_seqs, seq_len)``: the inputs ``measured`` was recorded on.
        measured: The block statistics of this model on these inputs
            (:func:`massdyn.tracker.measure.measure`), for the (token, dim) positions.
        layers: Layers to intervene on; None for every layer.
        batch_size: Sequences per forward pass.
        modes: ``zero`` and/or ``mean``.

    Returns:
        Rows of :data:`INTERVENTION_COLUMNS`.

    Raises:
        MechanismError: for a model without an LM head or a layer past the model.
    """
    if model.get_output_embeddings() is None or base_model(model) is model:
        raise MechanismError(
            f"--interventions: {type(model).__name__} has no LM head to take a loss from; "
            "walk a causal LM (…ForCausalLM) or leave out --interventions"
        )
    blocks = decoder_blocks(model)
    chosen = check_layers(layers, len(blocks))
    device = next(model.parameters()).device
    ids = torch.as_tensor(np.asarray(input_ids), dtype=torch.long)
    base, totals = 0.0, dict.fromkeys(((layer, mode) for layer in chosen for mode in modes), 0.0)
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size].to(device)
        with _BaseOutputs(blocks, chosen) as kept:
            base += _loss(model, batch)
        for layer in chosen:
            positions = _positions(measured, layer, start, len(batch))
            for mode in modes:
                output = kept.outputs[layer]
                if isinstance(output, tuple | list):
                    changed = (_substitute(output[0], positions, mode), *output[1:])
                else:
                    changed = _substitute(output, positions, mode)
                with _ResumeAfter(blocks, layer, changed, kept.chained):
                    totals[layer, mode] += _loss(model, batch)
    count = ids[:, 1:].numel()
    rows = [
        {"layer": layer, "mode": mode, "loss_base": base / count, "loss": total / count}
        for (layer, mode), total in totals.items()
    ]
    return pd.DataFrame(rows, columns=list(INTERVENTION_COLUMNS))


def _hidden_input(args: tuple, kwargs: dict):
    return args[0] if args else kwargs.get("hidden_states")


class _BaseOutputs(Hooks):
    """The chosen blocks' outputs during the unchanged pass.

    Also whether the family hands each block's output, untouched, to the next block
    (``chained``): only then can a pass resume after a block.
    """

    def __init__(self, blocks, chosen):
        self.blocks, self.chosen = blocks, set(chosen)
        self.outputs: dict[int, object] = {}
        self.chained = True
        self._last = None

    def _before(self, index: int):
        def fn(module, args, kwargs):
            if index > 0 and _hidden_input(args, kwargs) is not self._last:
                self.chained = False

        return fn

    def _after(self, index: int):
        def fn(module, args, output):
            self._last = block_hidden(output)
            if index in self.chosen:
                self.outputs[index] = output

        return fn

    def _attach(self) -> list:
        handles = []
        for i, block in enumerate(self.blocks):
            handles.append(block.register_forward_pre_hook(self._before(i), with_kwargs=True))
            handles.append(block.register_forward_hook(self._after(i)))
        return handles

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self._last = None


class _ResumeAfter:
    """The model's forward with block ``layer`` returning ``changed``: the rest runs.

    Where the family chains its blocks (see :class:`_BaseOutputs`), the blocks up to
    ``layer`` are not run again: each earlier block passes its input through, and block
    ``layer`` returns ``changed``, so only the blocks after it, the final norm and the LM
    head compute (a partial pass, the same operations on the same tensors as a whole one).
    Otherwise every block runs and a hook replaces block ``layer``'s output.
    """

    def __init__(self, blocks, layer: int, changed, chained: bool):
        self.blocks, self.layer, self.changed, self.chained = blocks, layer, changed, chained
        self._handle = None

    def __enter__(self) -> _ResumeAfter:
        if not self.chained:
            self._handle = self.blocks[self.layer].register_forward_hook(
                lambda module, args, output: self.changed
            )
            return self
        like = self.changed
        for block in self.blocks[: self.layer]:
            # An instance attribute shadows the class's forward for this pass only.
            block.forward = lambda *args, _like=like, **kwargs: _passed_through(
                _hidden_input(args, kwargs), _like
            )
        self.blocks[self.layer].forward = lambda *args, **kwargs: self.changed
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            return
        for block in self.blocks[: self.layer + 1]:
            del block.forward


def _passed_through(hidden, like):
    """``hidden`` in the form the family's blocks return (a tensor, or a tuple)."""
    if isinstance(like, tuple | list):
        return (hidden, *(None for _ in like[1:]))
    return hidden


def recorders(model: nn.Module, mechanisms: Mechanisms) -> dict[str, object]:
    """The recorders of the mechanisms measured in the forward pass, by table name."""
    out: dict[str, object] = {}
    if mechanisms.attention:
        out["attention"] = SinkRecorder(model)
    if mechanisms.super_weights:
        out["superweights"] = SuperWeightRecorder(model)
    return out


@torch.inference_mode()
def measure_mechanisms(
    model: nn.Module,
    input_ids,
    batch_size: int,
    mechanisms: Mechanisms,
    overlap: bool = True,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The block statistics and the mechanisms' tables, sinks and super weights in one pass.

    Args:
        model: A transformers causal LM in eval mode, on its device.
        input_ids: ``(n_seqs, seq_len)`` token ids.
        batch_size: Sequences per forward pass.
        mechanisms: What to measure beside the block statistics.
        overlap: As in :func:`massdyn.tracker.measure.measure`.

    Returns:
        The table :func:`~massdyn.tracker.measure.measure` returns, and each mechanism's
        table by name (``attention``, ``superweights``, ``interventions``).

    Raises:
        MechanismError: for a mechanism this model cannot be measured for exactly, or a
            layer past the model (before any forward pass).
        NonFiniteActivationsError: naming the layers whose outputs held NaN or inf.
    """
    if mechanisms.interventions != ():
        check_layers(mechanisms.interventions, len(decoder_blocks(model)))
    extra = recorders(model, mechanisms)
    table = measure(model, input_ids, batch_size, overlap, recorders=extra.values())
    tables = {name: recorder.table() for name, recorder in extra.items()}
    if mechanisms.interventions != ():
        tables["interventions"] = intervene(
            model, input_ids, table, mechanisms.interventions, batch_size
        )
    return table, tables


__all__ = [
    "ATTENTION_COLUMNS",
    "INTERVENTION_COLUMNS",
    "MODES",
    "SINK_EPSILON",
    "SUPERWEIGHT_COLUMNS",
    "MechanismError",
    "Mechanisms",
    "SinkRecorder",
    "SuperWeightRecorder",
    "check_layers",
    "down_projections",
    "intervene",
    "key0_probability",
    "measure_mechanisms",
    "recorders",
    "sink_metric",
]
