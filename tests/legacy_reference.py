"""Test helper: the four legacy OMFK architectures written down independently of layoutnet.

Everything here comes from `shared/reference/omfk_legacy_checkpoints.md` alone: the tensor lists
(names and shapes of each legacy `state_dict`) and the eval-mode functions, computed with plain
functional PyTorch in float64 straight from the legacy tensor names. Nothing from layoutnet is
imported, so a wrong name mapping or a model that computes something else shows up as a
difference in the logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SEQ_LEN = 20
VOCAB = 189
CLASSES = 9

V1_TENSORS = """
embedding.weight 189,32
conv1.weight 64,32,3
conv1.bias 64
conv2.weight 128,64,3
conv2.bias 128
fc.weight 9,128
fc.bias 9
"""

CNN_TENSORS = """
embedding.weight 189,128
conv2.weight 96,128,2
conv2.bias 96
conv3.weight 96,128,3
conv3.bias 96
conv4.weight 96,128,4
conv4.bias 96
conv5.weight 96,128,5
conv5.bias 96
bn1.weight 384
bn1.bias 384
bn1.running_mean 384
bn1.running_var 384
bn1.num_batches_tracked -
conv2_a.weight 384,384,3
conv2_a.bias 384
conv2_b.weight 384,384,5
conv2_b.bias 384
bn2.weight 768
bn2.bias 768
bn2.running_mean 768
bn2.running_var 768
bn2.num_batches_tracked -
conv3_deep.weight 384,768,3
conv3_deep.bias 384
bn3.weight 384
bn3.bias 384
bn3.running_mean 384
bn3.running_var 384
bn3.num_batches_tracked -
fc1.weight 384,768
fc1.bias 384
fc2.weight 192,384
fc2.bias 192
fc3.weight 9,192
fc3.bias 9
"""

TRANSFORMER_HEAD = """
embedding.weight 189,128
pos_encoder.pe 1,20,128
"""

TRANSFORMER_LAYER = """
self_attn.in_proj_weight 384,128
self_attn.in_proj_bias 384
self_attn.out_proj.weight 128,128
self_attn.out_proj.bias 128
linear1.weight 512,128
linear1.bias 512
linear2.weight 128,512
linear2.bias 128
norm1.weight 128
norm1.bias 128
norm2.weight 128
norm2.bias 128
"""

TRANSFORMER_TAIL = """
fc1.weight 64,128
fc1.bias 64
fc2.weight 9,64
fc2.bias 9
"""

PARAMETER_COUNTS = {"v1": 38_121, "cnn": 2_636_169, "transformer": 826_121, "ensemble": 3_462_292}
TENSOR_COUNTS = {"v1": 7, "cnn": 36, "transformer": 54, "ensemble": 92}


def _parse(table: str, prefix: str = "") -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in table.strip().splitlines():
        name, dims = line.split()
        shapes[prefix + name] = () if dims == "-" else tuple(int(d) for d in dims.split(","))
    return shapes


def legacy_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """name -> shape of every tensor of the legacy state_dict, in the documented order."""
    if arch == "v1":
        return _parse(V1_TENSORS)
    if arch == "cnn":
        return _parse(CNN_TENSORS)
    if arch == "transformer":
        shapes = _parse(TRANSFORMER_HEAD)
        for i in range(4):
            shapes.update(_parse(TRANSFORMER_LAYER, f"transformer.layers.{i}."))
        shapes.update(_parse(TRANSFORMER_TAIL))
        return shapes
    if arch == "ensemble":
        shapes = {"weight_cnn": (), "weight_transformer": ()}
        shapes.update({f"cnn.{k}": v for k, v in legacy_shapes("cnn").items()})
        shapes.update({f"transformer.{k}": v for k, v in legacy_shapes("transformer").items()})
        return shapes
    raise ValueError(arch)


def random_legacy_state_dict(arch: str, seed: int = 0, pe_rows: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    """A legacy state_dict with exactly the documented names and shapes and random values scaled
    so that logits stay of order one (weights ~ N(0, 1/fan_in), positive running variances)."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, shape in legacy_shapes(arch).items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            tensor = torch.randint(0, 10_000, (), generator=gen, dtype=torch.int64)
        elif name.endswith("pos_encoder.pe"):
            tensor = torch.randn(1, pe_rows, shape[2], generator=gen)
        elif leaf == "running_var":
            tensor = 0.5 + torch.rand(shape, generator=gen)
        elif leaf == "running_mean":
            tensor = 0.2 * torch.randn(shape, generator=gen)
        elif name.startswith("weight_"):
            tensor = torch.randn(shape, generator=gen)
        elif len(shape) >= 2 and "embedding" not in name:
            fan_in = math.prod(shape[1:])
            tensor = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
        elif len(shape) >= 2:
            tensor = torch.randn(shape, generator=gen)
        elif leaf == "weight":  # BatchNorm / LayerNorm scale
            tensor = 1.0 + 0.2 * torch.randn(shape, generator=gen)
        else:
            tensor = 0.1 * torch.randn(shape, generator=gen)
        out[name] = tensor.to(torch.float32) if tensor.is_floating_point() else tensor
    return out


def random_ids(batch: int = 12, seed: int = 0) -> torch.Tensor:
    """[batch, 20] int64 ids: one all-padding row, full-length rows, and rows with a padded tail
    (including unknown characters, id 0, in the middle)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (batch, SEQ_LEN), generator=gen)
    ids[0] = 0
    for row in range(3, batch):
        length = int(torch.randint(1, SEQ_LEN, (), generator=gen))
        ids[row, length:] = 0
    ids[batch - 1, 2] = 0
    return ids


# ---------------------------------------------------------------------------- functions (eval mode)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _batchnorm(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """[B, C, L] with running statistics, eps 1e-5."""
    mean = sd[f"{name}.running_mean"][None, :, None]
    var = sd[f"{name}.running_var"][None, :, None]
    return (x - mean) / torch.sqrt(var + 1e-5) * sd[f"{name}.weight"][None, :, None] + sd[f"{name}.bias"][
        None, :, None
    ]


def _layernorm(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * sd[f"{name}.weight"] + sd[f"{name}.bias"]


def _linear(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def _conv(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str, pad: int) -> torch.Tensor:
    return F.conv1d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=pad)


def _sub(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}


def v1_logits(sd: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    x = sd["embedding.weight"][ids].transpose(1, 2)  # [B, 32, 20]
    x = torch.relu(_conv(x, sd, "conv1", 1))
    x = F.max_pool1d(x, kernel_size=2, stride=2)  # 20 -> 10
    x = torch.relu(_conv(x, sd, "conv2", 1))
    return _linear(x.mean(dim=2), sd, "fc")


def cnn_logits(sd: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    x = sd["embedding.weight"][ids].transpose(1, 2)  # [B, 128, 20]
    branches = [
        _gelu(_conv(x, sd, f"conv{k}", {2: 1, 3: 1, 4: 2, 5: 2}[k]))[:, :, :SEQ_LEN] for k in (2, 3, 4, 5)
    ]
    x = _batchnorm(torch.cat(branches, dim=1), sd, "bn1")
    a = _gelu(_conv(x, sd, "conv2_a", 1))
    b = _gelu(_conv(x, sd, "conv2_b", 2))
    x = _batchnorm(torch.cat([a, b], dim=1), sd, "bn2")
    x = _batchnorm(_gelu(_conv(x, sd, "conv3_deep", 1)), sd, "bn3")
    x = torch.cat([x.max(dim=2).values, x.mean(dim=2)], dim=1)
    x = _gelu(_linear(x, sd, "fc1"))
    x = _gelu(_linear(x, sd, "fc2"))
    return _linear(x, sd, "fc3")


def encoder_layer(x: torch.Tensor, sd: dict[str, torch.Tensor], heads: int = 8) -> torch.Tensor:
    """One post-norm encoder layer with GELU; `sd` holds the layer's own names."""
    batch, length, dim = x.shape
    head_dim = dim // heads
    qkv = x @ sd["self_attn.in_proj_weight"].T + sd["self_attn.in_proj_bias"]
    q, k, v = (t.reshape(batch, length, heads, head_dim).permute(0, 2, 1, 3) for t in qkv.split(dim, dim=-1))
    attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1) @ v
    attention = attention.permute(0, 2, 1, 3).reshape(batch, length, dim)
    y = _layernorm(x + _linear(attention, sd, "self_attn.out_proj"), sd, "norm1")
    return _layernorm(y + _linear(_gelu(_linear(y, sd, "linear1")), sd, "linear2"), sd, "norm2")


def transformer_logits(sd: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    x = sd["embedding.weight"][ids] + sd["pos_encoder.pe"][:, :SEQ_LEN, :]
    for i in range(4):
        x = encoder_layer(x, _sub(sd, f"transformer.layers.{i}."))
    x = _gelu(_linear(x.mean(dim=1), sd, "fc1"))
    return _linear(x, sd, "fc2")


def ensemble_logits(sd: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    w_c = torch.sigmoid(sd["weight_cnn"])
    w_t = torch.sigmoid(sd["weight_transformer"])
    cnn = cnn_logits(_sub(sd, "cnn."), ids)
    transformer = transformer_logits(_sub(sd, "transformer."), ids)
    return (w_c * cnn + w_t * transformer) / (w_c + w_t)


FUNCTIONS = {
    "v1": v1_logits,
    "cnn": cnn_logits,
    "transformer": transformer_logits,
    "ensemble": ensemble_logits,
}


def reference_logits(arch: str, state_dict: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """The legacy function of `arch`, in float64, from the legacy state_dict (a `module.` prefix
    must already be removed)."""
    sd = {k: v.to(torch.float64) if v.is_floating_point() else v for k, v in state_dict.items()}
    return FUNCTIONS[arch](sd, ids.long())
