"""Every family and padding mode traces strictly and computes the same thing traced and eager."""

import pytest
import torch

from layoutnet.errors import ConfigError, ExportError
from layoutnet.export.trace import strict_trace, trace_inputs
from layoutnet.models import (
    CNNClassifier,
    CompactCNN,
    EnsembleClassifier,
    TransformerClassifier,
    count_parameters,
)
from layoutnet.models.blocks import FixedLengthConv1d

SEQ = 20


def tiny_cnn(padding="same", kernels=(2, 3, 4, 5), pooling=("max", "mean")):
    return CNNClassifier(
        embed_dim=8,
        branch_kernels=kernels,
        branch_channels=4,
        mix_kernels=(2, 3),
        deep_channels=8,
        padding=padding,
        pooling=pooling,
        head_dims=(8,),
    )


def tiny_transformer(**kw):
    base = dict(d_model=16, num_heads=4, num_layers=2, ff_dim=32, head_dims=(8,))
    return TransformerClassifier(**{**base, **kw})


FAMILIES = {
    "cnn_same": lambda: tiny_cnn("same"),
    "cnn_crop": lambda: tiny_cnn("crop"),
    "cnn_masked_pool": lambda: tiny_cnn("same", pooling=("masked_mean", "max", "mean")),
    "compact_cnn": lambda: CompactCNN(embed_dim=8, channels=(8, 8), pools=(2, 1)),
    "compact_cnn_crop_even": lambda: CompactCNN(
        embed_dim=8, channels=(8, 8), kernel_size=4, pools=(1, 2), padding="crop"
    ),
    "transformer_post_mask": lambda: tiny_transformer(),
    "transformer_pre_learned": lambda: tiny_transformer(norm_first=True, positional="learned"),
    "transformer_nomask_mean": lambda: tiny_transformer(attention_mask=False, pooling=("mean", "max")),
    "ensemble": lambda: EnsembleClassifier(tiny_cnn("crop"), tiny_transformer()),
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_traces_strictly_and_matches_eager(name):
    torch.manual_seed(0)
    model = FAMILIES[name]().eval()
    real = torch.randint(1, 189, (3, SEQ))
    real[0, 4:] = 0
    inputs = trace_inputs(real)
    assert len(inputs) == 6
    result = strict_trace(model, inputs)
    assert result.max_abs_diff < 1e-5
    for x in inputs:
        torch.testing.assert_close(result.module(x), model(x))
    batch = torch.randint(0, 189, (7, SEQ), dtype=torch.int32)
    assert model(batch).shape == (7, 9)


@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("padding", ["same", "crop"])
def test_fixed_length_conv_keeps_length(kernel, padding):
    conv = FixedLengthConv1d(3, 5, kernel, padding, SEQ)
    assert conv(torch.randn(2, 3, SEQ)).shape == (2, 5, SEQ)


def test_same_padding_is_centred_and_crop_is_first_positions():
    x = torch.randn(1, 2, SEQ)
    same = FixedLengthConv1d(2, 2, 4, "same", SEQ)
    reference = torch.nn.functional.conv1d(
        torch.nn.functional.pad(x, (1, 2)), same.conv.weight, same.conv.bias
    )
    torch.testing.assert_close(same(x), reference)
    crop = FixedLengthConv1d(2, 2, 4, "crop", SEQ)
    full = torch.nn.functional.conv1d(x, crop.conv.weight, crop.conv.bias, padding=2)
    assert full.shape[-1] == SEQ + 1
    torch.testing.assert_close(crop(x), full[:, :, :SEQ])


def test_masked_padding_does_not_change_real_positions_prediction():
    torch.manual_seed(0)
    model = tiny_transformer(attention_mask=True, pooling=("masked_mean",)).eval()
    ids = torch.zeros(1, SEQ, dtype=torch.long)
    ids[0, :5] = torch.tensor([7, 8, 2, 4, 20])
    out = model(ids)
    assert torch.isfinite(out).all()
    assert torch.isfinite(model(torch.zeros(1, SEQ, dtype=torch.long))).all()


def test_production_sizes_have_the_reference_parameter_counts():
    cnn = CNNClassifier(
        embed_dim=128,
        branch_kernels=(2, 3, 4, 5),
        branch_channels=96,
        mix_kernels=(3, 5),
        deep_channels=384,
        padding="crop",
        head_dims=(384, 192),
    )
    transformer = TransformerClassifier(
        d_model=128,
        num_heads=8,
        num_layers=4,
        ff_dim=512,
        attention_mask=False,
        pooling=("mean",),
        head_dims=(64,),
    )
    assert count_parameters(cnn) == 2_636_169
    assert count_parameters(transformer) == 826_121
    assert count_parameters(EnsembleClassifier(cnn, transformer)) == 3_462_292
    assert count_parameters(CompactCNN()) == 38_121


class ShapeDependent(torch.nn.Module):
    """The kind of model that broke the app's export: Python reads a length and branches on it."""

    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(189, 4)
        self.fc = torch.nn.Linear(4, 9)

    def forward(self, ids):
        length = int((ids != 0).sum())
        if length > 10:
            return self.fc(self.embedding(ids[:, :length]).mean(1))
        return self.fc(self.embedding(ids).mean(1))


def test_untraceable_model_is_refused_naming_warning_and_line():
    with pytest.raises(ExportError) as info:
        strict_trace(ShapeDependent(), trace_inputs())
    message = str(info.value)
    assert "TracerWarning" in message
    assert "length = int((ids != 0).sum())" in message
    assert "test_models.py:" in message


@pytest.mark.parametrize(
    ("build", "key", "allowed"),
    [
        (lambda: tiny_transformer(d_model=16, num_heads=6), "num_heads", "1, 2, 4, 8, 16"),
        (lambda: tiny_cnn(padding="valid"), "padding", "same, crop"),
        (lambda: tiny_cnn(kernels=(3, 25)), "branch_kernels", "1..20"),
        (lambda: tiny_transformer(positional="rotary"), "positional", "sinusoidal, learned"),
        (lambda: tiny_transformer(pooling=("median",)), "pooling", "mean, max, masked_mean"),
        (lambda: CompactCNN(pools=(3, 1)), "pools[0]", None),
    ],
)
def test_impossible_configs_are_refused_with_key_and_allowed_values(build, key, allowed):
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.key == key
    if allowed:
        assert allowed in str(info.value)


def test_every_network_calls_its_family_by_its_registry_name():
    # one name in the config (model=...), the console, report.json and the artifact's metadata
    from layoutnet.models import model_family
    from layoutnet.models.registry import FAMILIES

    for name, cls in FAMILIES.items():
        assert cls.family == name
    assert model_family(CompactCNN()) == "compact_cnn"
