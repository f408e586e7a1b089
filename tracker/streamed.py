"""Measure a checkpoint one decoder block at a time, for models bigger than the device.

The walker needs each block's output only, so the model never has to be resident, as in
GPTQ/AWQ: the skeleton is built without weights (parameters on the meta device; buffers
such as rotary frequencies are real, they are computed, not stored), the part before the
first block (embeddings) is loaded, and the family's own forward runs once with every
block standing in as the identity, which captures what the family passes to each block:
the hidden states and whatever else (attention mask, position ids, rotary embeddings).
These differ between blocks in families whose layers differ (sliding-window and global
layers, local and global rotary bases: Qwen2/3 with max_window_layers, Gemma2/3,
Cohere2), so each block is given its own. Then each block in turn is loaded from the
safetensors files (one block's tensors at a time, sharded files included), every batch
of sequences runs through it, its outputs are reduced by the same hooks as the
whole-model walk, and it is freed before the next block. The LM head and the final norm
are never loaded.

The same blocks run on the same inputs in the same order as in the whole model's forward,
so on the CPU in float32 the statistics equal the whole-model walk's bit for bit. That
holds only if the family hands each block's output, untouched, to the next block: the
capture checks it (every block must receive the very tensor the previous one returned),
and tries the output conventions families use (a tensor, or a tuple whose first item is
the hidden states). A family that does anything else between blocks, or whose files name
tensors other than its parameters (checkpoints converted on load, such as MoE experts
stored one by one), raises :class:`NotStreamableError`, and the walker measures the whole model
instead, saying why in ``load``.

Contract: :func:`streamable` says whether a checkpoint folder can be streamed (safetensors
whose names match the model's parameters) and why not; :func:`measure_streamed` measures
it and reports what was resident at most.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from massdyn.data import read_json
from massdyn.tracker.blocks import BLOCK_INDEX, base_model, block_hidden, decoder_blocks
from massdyn.tracker.config import parse_size
from massdyn.tracker.measure import ActivationRecorder, check_finite


@contextlib.contextmanager
def _parameters_on_meta():
    """Build modules with their parameters on the meta device and their buffers real.

    Each parameter exists on the CPU only between its creation and its registration.
    """
    register = nn.Module.register_parameter

    def on_meta(module, name, param):
        register(module, name, param)
        if param is not None and param.device.type != "meta":
            p = module._parameters[name]
            module._parameters[name] = nn.Parameter(p.to("meta"), requires_grad=False)

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


# safetensors' dtype names (the header's "dtype" field).
_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _header(path: Path) -> tuple[dict, int]:
    """A safetensors file's header (tensor name -> dtype, shape, offsets) and data start."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


class _WeightFiles:
    """Tensors of a checkpoint's safetensors files by name, read a few at a time.

    Each tensor is read from its byte range straight into its own buffer: unlike a
    memory map, no page of the file stays counted in the process's resident memory, so
    what is resident is what is in use (one block, not the blocks already measured).
    """

    def __init__(self, folder: Path):
        index = folder / "model.safetensors.index.json"
        if index.exists():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        self.folder = folder
        self.where: dict[str, str] = {}
        self.shapes: dict[str, list[int]] = {}
        self._entries: dict[str, tuple[torch.dtype, list[int], int, int]] = {}
        for f in files:
            header, start = _header(folder / f)
            for k, e in header.items():
                if e["dtype"] not in _DTYPES:
                    raise ValueError(f"{f}: tensor {k!r} has dtype {e['dtype']}, not supported")
                begin, end = e["data_offsets"]
                self.where[k] = f
                self.shapes[k] = list(e["shape"])
                self._entries[k] = (
                    _DTYPES[e["dtype"]],
                    list(e["shape"]),
                    start + begin,
                    end - begin,
                )

    def read(self, names: list[str], device, dtype) -> dict[str, torch.Tensor]:
        """The named tensors, on ``device`` in ``dtype`` (floating tensors only are cast)."""
        out = {}
        by_file: dict[str, list[str]] = {}
        for n in names:
            by_file.setdefault(self.where[n], []).append(n)
        for f, keys in by_file.items():
            with open(self.folder / f, "rb", buffering=0) as h:
                for k in keys:
                    stored, shape, offset, nbytes = self._entries[k]
                    raw = torch.empty(nbytes, dtype=torch.uint8)
                    h.seek(offset)
                    view, done = memoryview(raw.numpy()), 0
                    while done < nbytes:  # readinto may return short counts
                        got = h.readinto(view[done:])
                        if not got:
                            raise ValueError(f"{f} is truncated: tensor {k!r} is cut short")
                        done += got
                    t = raw.view(stored).reshape(shape)
                    target = dtype if t.is_floating_point() else t.dtype
                    out[k] = t.to(device=device, dtype=target)
        return out


def _file_key(name: str, keys, prefix: str) -> str | None:
    """The file's name of model parameter ``name`` (with or without the base-model prefix)."""
    if name in keys:
        return name
    bare = name.removeprefix(f"{prefix}.") if prefix else name
    if bare in keys:
        return bare
    if prefix and f"{prefix}.{name}" in keys:
        return f"{prefix}.{name}"
    return None


def streamable(folder: str | Path) -> str | None:
    """None when the checkpoint in ``folder`` can be streamed, else why not (one line)."""
    folder = Path(folder)
    if (
        not (folder / "model.safetensors").exists()
        and not (folder / "model.safetensors.index.json").exists()
    ):
        return "weights are not in safetensors format (.bin cannot be memory-mapped)"
    return None


def weights_nbytes(folder: str | Path, dtype: torch.dtype) -> int:
    """Bytes the checkpoint's tensors take in ``dtype`` (from the headers, nothing read)."""
    files = _WeightFiles(Path(folder))
    size = torch.empty((), dtype=dtype).element_size()
    return int(sum(np.prod(shape, dtype=np.int64) * size for shape in files.shapes.values()))


class NotStreamableError(ValueError):
    """The checkpoint cannot be streamed exactly; the message says why (one line)."""


# What a block may return, as families unpack it: the hidden states, or a tuple whose first
# item they are (with one or two further items: attention weights, cache).
_OUTPUT_FORMS = (
    lambda h: h,
    lambda h: (h,),
    lambda h: (h, None),
    lambda h: (h, None, None),
)


def _hidden_of(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}  # a family that passes it by name


def _capture_block_inputs(body: nn.Module, blocks, batches) -> list[list[tuple[tuple, dict]]]:
    """What the family's forward passes to each block, per batch: ``[block][batch]``.

    Each block stands in as the identity in one of :data:`_OUTPUT_FORMS`; the first form
    under which every block receives exactly the tensor the previous block returned wins.

    Raises:
        NotStreamableError: when no form does (the family changes the hidden states
            between blocks, or calls them otherwise).
    """
    failures = []
    for form in _OUTPUT_FORMS:
        captured, broken = _capture_with(body, blocks, batches, form)
        if broken is None:
            return captured
        failures.append(broken)
    raise NotStreamableError(f"cannot stream this family exactly ({failures[0]})")


def _capture_with(body, blocks, batches, form):
    """One capture pass with the blocks returning ``form(hidden)``: (inputs, why not)."""
    captured: list[list[tuple[tuple, dict]]] = [[] for _ in blocks]
    returned: list[torch.Tensor | None] = [None]
    broken: list[str] = []

    def stand_in(index):
        def forward(*args, **kwargs):
            hidden = _hidden_of(args, kwargs)
            if index > 0 and hidden is not returned[0]:
                broken.append(f"block {index} does not receive block {index - 1}'s output")
            captured[index].append((args, kwargs))
            returned[0] = hidden
            return form(hidden)

        return forward

    for i, block in enumerate(blocks):
        block.forward = stand_in(i)
    try:
        for batch in batches:
            returned[0] = None
            body(input_ids=batch, use_cache=False)
    except Exception as exc:  # this form does not fit the family's code; the next may
        broken.append(f"{type(exc).__name__}: {str(exc).strip()[:80]}")
    finally:
        for block in blocks:
            del block.forward  # the class's forward again
    if not broken and any(len(c) != len(batches) for c in captured):
        broken.append("a block was not called once per batch")
    return captured, (broken[0] if broken else None)


@dataclass
class StreamStats:
    """What a streamed measurement held at most.

    Attributes:
        peak_param_bytes: Most bytes of parameters resident at once (on the device).
        block_bytes: Largest single block's parameters.
        resident_bytes: Parameters outside the blocks (embeddings), resident until the
            first block's inputs are captured.
        peak_device_bytes: ``torch.cuda.max_memory_allocated`` on CUDA (else None).
    """

    peak_param_bytes: int = 0
    block_bytes: int = 0
    resident_bytes: int = 0
    peak_device_bytes: int | None = None


def _resident(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.device.type != "meta")


class StreamedModel:
    """A checkpoint's skeleton with a loader of its parameters by module.

    Args:
        folder: Checkpoint folder (``config.json`` and safetensors weights).
        device: Where blocks run.
        dtype: Dtype of weights and activations, as ``from_pretrained(dtype=...)``.
        trust_remote_code: Allow model code from the checkpoint.

    Raises:
        ValueError: when the files do not hold a tensor the model needs (naming it).
    """

    def __init__(self, folder, device, dtype, trust_remote_code: bool = False):
        from transformers import AutoConfig, AutoModelForCausalLM

        self.folder, self.device, self.dtype = Path(folder), torch.device(device), dtype
        config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
        whole = read_json("architectures.json")["streamed_whole"]["families"]
        if config.model_type in whole:
            raise NotStreamableError(f"{config.model_type}: {whole[config.model_type]}")
        with _parameters_on_meta():
            self.model = AutoModelForCausalLM.from_config(
                config, dtype=dtype, trust_remote_code=trust_remote_code
            )
        self.model.eval()
        self.files = _WeightFiles(self.folder)
        self.prefix = getattr(self.model, "base_model_prefix", "")
        self.blocks = decoder_blocks(self.model)
        names = {id(m): n for n, m in self.model.named_modules()}
        self.block_names = [names[id(b)] for b in self.blocks]
        head = self.model.get_output_embeddings()
        self._skip = {id(head)} if head is not None else set()
        self._skip |= {id(b) for b in self.blocks}
        # Every block's tensors must be in the files under the model's own names, checked
        # before anything runs (a checkpoint converted on load has others).
        for block, name in zip(self.blocks, self.block_names, strict=True):
            for leaf, _ in block.named_parameters(recurse=True):
                full = f"{name}.{leaf}"
                if _file_key(full, self.files.where, self.prefix) is None:
                    raise NotStreamableError(
                        f"the safetensors files hold no tensor {full!r} under the model's "
                        "own name (the checkpoint is converted on load)"
                    )
        # Blocks in the files past the config's depth would be left out silently.
        depth = len(self.blocks)
        for key in self.files.where:
            m = BLOCK_INDEX.search(key)
            if m and int(m.group(1)) >= depth:
                raise NotStreamableError(
                    f"the files hold block {m.group(1)} but config.json describes {depth}"
                )
        self._move_buffers()

    def _move_buffers(self) -> None:
        for module in self.model.modules():
            for name, buf in module._buffers.items():
                if buf is not None and buf.device != self.device:
                    module._buffers[name] = buf.to(self.device)

    def _load(self, module: nn.Module, prefix: str) -> None:
        """Fill ``module``'s parameters (recursively) from the files."""
        keys = {}
        for name, _ in module.named_parameters(recurse=True):
            full = f"{prefix}.{name}" if prefix else name
            key = _file_key(full, self.files.where, self.prefix)
            if key is None:
                raise NotStreamableError(
                    f"the safetensors files hold no tensor {full!r} under the model's own name"
                )
            keys[name] = key
        tensors = self.files.read(list(keys.values()), self.device, self.dtype)
        for name, key in keys.items():
            owner, leaf = _owner(module, name)
            owner._parameters[leaf] = nn.Parameter(tensors[key], requires_grad=False)

    def _unload(self, module: nn.Module) -> None:
        # Tied parameters under every name they have, so that no owner keeps the tensor.
        for name, param in list(module.named_parameters(recurse=True, remove_duplicate=False)):
            owner, leaf = _owner(module, name)
            owner._parameters[leaf] = nn.Parameter(
                torch.empty_like(param, device="meta"), requires_grad=False
            )

    def load_stem(self) -> None:
        """Load every parameter outside the blocks and the LM head (embeddings, norms)."""
        for name, module in self.model.named_modules():
            if id(module) in self._skip:
                continue
            own = dict(module.named_parameters(recurse=False))
            if not own or _inside(name, self.block_names) or self._in_head(name):
                continue
            keys = {}
            for leaf in own:
                full = f"{name}.{leaf}" if name else leaf
                key = _file_key(full, self.files.where, self.prefix)
                if key is not None:  # else tied or unused (the final norm of some exports)
                    keys[leaf] = key
            tensors = self.files.read(list(keys.values()), self.device, self.dtype)
            for leaf, key in keys.items():
                module._parameters[leaf] = nn.Parameter(tensors[key], requires_grad=False)

    def _in_head(self, name: str) -> bool:
        head = self.model.get_output_embeddings()
        if head is None:
            return False
        head_name = next((n for n, m in self.model.named_modules() if m is head), None)
        return head_name is not None and (name == head_name or name.startswith(head_name + "."))


def _owner(module: nn.Module, dotted: str):
    *path, leaf = dotted.split(".")
    for part in path:
        module = getattr(module, part)
    return module, leaf


def _inside(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@torch.inference_mode()
def measure_streamed(
    folder,
    input_ids,
    batch_size: int,
    device,
    dtype: torch.dtype,
    trust_remote_code: bool = False,
    mechanisms=None,
) -> tuple[pd.DataFrame, StreamStats, dict[str, pd.DataFrame]]:
    """Measure every block of the checkpoint in ``folder`` with one block resident at a time.

    Args:
        folder: Checkpoint folder with ``config.json`` and safetensors weights.
        input_ids: ``(n_seqs, seq_len)`` token ids.
        batch_size: Sequences per pass (the same batches as the whole-model walk's).
        device: Where the blocks run.
        dtype: Weights and activations.
        trust_remote_code: Allow model code from the checkpoint.
        mechanisms: Attention sinks and super weights to record in the same pass
            (:class:`~massdyn.tracker.config.Mechanisms`); interventions need the LM head
            and the whole model, so asking for them raises :class:`NotStreamableError`.

    Returns:
        The table :func:`~massdyn.tracker.measure.measure` returns, what was resident, and
        each mechanism's table by name.

    Raises:
        NonFiniteActivationsError: naming the layers whose outputs held NaN or inf.
        ValueError: when the files lack a tensor the model needs.
    """
    from massdyn.tracker.mechanisms import recorders

    if mechanisms is not None and mechanisms.interventions != ():
        raise NotStreamableError("interventions run the whole model with its LM head")
    device = torch.device(device)
    sm = StreamedModel(folder, device, dtype, trust_remote_code)
    stats = StreamStats()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sm.load_stem()
    stats.resident_bytes = stats.peak_param_bytes = _resident(sm.model)
    ids = torch.as_tensor(np.asarray(input_ids), dtype=torch.long)
    body = base_model(sm.model)

    # The family's forward with the blocks as the identity: what it feeds each block.
    batches = [ids[s : s + batch_size].to(device) for s in range(0, ids.shape[0], batch_size)]
    captured = _capture_block_inputs(body, sm.blocks, batches)
    # The blocks' inputs are all captured: the embeddings are not needed again, so the
    # peak is the larger of the stem and one block, not their sum.
    sm._unload(sm.model)

    hidden = [_hidden_of(*c) for c in captured[0]]
    extra = recorders(sm.model, mechanisms) if mechanisms is not None else {}
    with contextlib.ExitStack() as stack:
        rec = stack.enter_context(ActivationRecorder(sm.model, overlap=False))
        for recorder in extra.values():
            stack.enter_context(recorder)
        for layer, block in enumerate(sm.blocks):
            sm._load(block, sm.block_names[layer])
            stats.block_bytes = max(stats.block_bytes, _resident(block))
            stats.peak_param_bytes = max(stats.peak_param_bytes, _resident(sm.model))
            for i, (args, kwargs) in enumerate(captured[layer]):
                args, kwargs = _with_hidden(args, kwargs, hidden[i])
                hidden[i] = block_hidden(block(*args, **kwargs))
            captured[layer] = []  # this block's masks and rotary tables are done with
            sm._unload(block)
    if device.type == "cuda":
        stats.peak_device_bytes = int(torch.cuda.max_memory_allocated(device))
    table = check_finite(rec.table())
    return table, stats, {name: recorder.table() for name, recorder in extra.items()}


__all__ = [
    "NotStreamableError",
    "StreamStats",
    "StreamedModel",
    "measure_streamed",
    "parse_size",
    "streamable",
    "weights_nbytes",
]
