"""The reference executor on real artifacts: every model family and configuration, converted with
coremltools and saved, then run from disk and compared with PyTorch.

Tiny randomly initialised models (BatchNorm running statistics randomised) keep each conversion
fast; every artifact is converted once per module. Tolerances on softmax probabilities: 1e-4 for
fp32 artifacts, 1e-2 for fp16 ones.
"""

from __future__ import annotations

import logging
import shutil
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from layoutnet.errors import ExportError
from layoutnet.export.executor import MIL_OPS, NN_LAYERS, UnsupportedOpError, kernels, load_executor
from layoutnet.models import CNNClassifier, CompactCNN, EnsembleClassifier, TransformerClassifier

logging.getLogger("coremltools").setLevel(logging.ERROR)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

SEQ = 20
FP32_TOL = 1e-4
FP16_TOL = 1e-2
OBSERVED: dict[str, float] = {}


def tiny_cnn(**kw) -> CNNClassifier:
    base = dict(
        embed_dim=8,
        branch_kernels=(2, 3),
        branch_channels=4,
        mix_kernels=(3,),
        deep_channels=8,
        head_dims=(8,),
    )
    return CNNClassifier(**{**base, **kw})


def tiny_transformer(**kw) -> TransformerClassifier:
    base = dict(d_model=8, num_heads=2, num_layers=1, ff_dim=16, head_dims=(8,))
    return TransformerClassifier(**{**base, **kw})


FAMILIES: dict[str, Callable[[], nn.Module]] = {
    "cnn-same-gelu-maxmeanmasked": lambda: tiny_cnn(padding="same", pooling=("max", "mean", "masked_mean")),
    "cnn-crop-relu-max-nomix": lambda: tiny_cnn(
        padding="crop", activation="relu", pooling=("max",), mix_kernels=()
    ),
    "cnn-crop-silu-masked": lambda: tiny_cnn(
        padding="crop", activation="silu", pooling=("masked_mean",), branch_kernels=(2, 5), mix_kernels=(3, 4)
    ),
    "cnn-same-tanh-mean": lambda: tiny_cnn(padding="same", activation="tanh", pooling=("mean",)),
    "compact-same-relu": lambda: CompactCNN(embed_dim=8, channels=(8, 8), pools=(2, 1)),
    "compact-crop-gelu": lambda: CompactCNN(
        embed_dim=8, channels=(8, 6), kernel_size=4, pools=(2, 2), padding="crop", activation="gelu"
    ),
    "transformer-mask-learned-prenorm": lambda: tiny_transformer(
        attention_mask=True, positional="learned", norm_first=True, pooling=("mean", "max", "masked_mean")
    ),
    "transformer-nomask-sinusoidal-postnorm": lambda: tiny_transformer(
        attention_mask=False, positional="sinusoidal", norm_first=False, num_layers=2, pooling=("mean",)
    ),
    "ensemble": lambda: EnsembleClassifier(tiny_cnn(padding="crop"), tiny_transformer()),
}
CONFIGS = ("mlprogram-fp32", "mlprogram-fp16", "neuralnetwork")


def build(family: str) -> nn.Module:
    torch.manual_seed(sum(map(ord, family)))
    model = FAMILIES[family]()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1.0, 0.3)
                module.bias.normal_(0.0, 0.3)
        # confident logits make the probability comparison meaningful
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        last.weight.mul_(4.0)
    return model.eval()


def convert(model: nn.Module, path: Path, config: str, target: str = "iOS15") -> Path:
    traced = torch.jit.trace(model, torch.zeros(1, SEQ, dtype=torch.int32))
    options: dict = {}
    if config.startswith("mlprogram"):
        options = dict(
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT16 if config.endswith("fp16") else ct.precision.FLOAT32,
            minimum_deployment_target=getattr(ct.target, target),
        )
    else:
        options = dict(convert_to="neuralnetwork")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = ct.convert(
            traced,
            inputs=[ct.TensorType(name="input_ids", shape=(1, SEQ), dtype=np.int32)],
            outputs=[ct.TensorType(name="classLogits")],
            skip_model_load=True,
            **options,
        )
    ml.save(str(path))
    return path


def sample_ids(n: int = 200, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 189, size=(n, SEQ)).astype(np.int32)
    lengths = rng.integers(0, SEQ + 1, size=n)
    ids[np.arange(SEQ)[None, :] >= lengths[:, None]] = 0
    ids[0] = 0  # all padding
    ids[1:2] = rng.integers(1, 189, size=SEQ)  # full length
    ids[2:3, ::3] = 0  # unknown characters inside the text
    ids[3:4] = 188
    return ids


def torch_probs(model: nn.Module, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(ids).long()), dim=-1).numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Artifacts:
    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[tuple, tuple[nn.Module, Path]] = {}

    def get(self, family: str, config: str, target: str = "iOS15") -> tuple[nn.Module, Path]:
        key = (family, config, target)
        if key not in self.cache:
            model = build(family)
            suffix = ".mlmodel" if config == "neuralnetwork" else ".mlpackage"
            path = self.root / f"{family}-{config}-{target}{suffix}"
            self.cache[key] = (model, convert(model, path, config, target))
        return self.cache[key]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Artifacts:
    return Artifacts(tmp_path_factory.mktemp("executor-artifacts"))


@pytest.fixture(scope="module", autouse=True)
def report_observed():
    yield
    if OBSERVED:
        width = max(map(len, OBSERVED))
        lines = [f"  {k:<{width}}  {v:.3g}" for k, v in sorted(OBSERVED.items())]
        print("\nmax |softmax difference| executor vs PyTorch:\n" + "\n".join(lines))


# ----------------------------------------------------------------------------- parity and batching


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_artifact_matches_pytorch(artifacts: Artifacts, family: str, config: str):
    model, path = artifacts.get(family, config)
    executor = load_executor(path)
    assert executor.backend == "reference-executor"
    assert executor.input_name == "input_ids" and executor.output_name == "classLogits"
    assert executor.batched, executor.batch_fallback
    ids = sample_ids()
    logits = executor.predict(ids)
    assert logits.shape == (len(ids), 9) and logits.dtype == np.float32
    diff = np.abs(softmax(logits) - torch_probs(model, ids)).max(axis=1)
    padding_only = ~ids.any(axis=1)
    OBSERVED[f"{family} {config}"] = float(diff.max())
    if config.endswith("fp16"):
        # All-padding rows included: the transformer leaves a row without text unmasked, so fp16
        # and fp32 agree there too.
        OBSERVED[f"{family} {config} (all-padding rows)"] = float(diff[padding_only].max(initial=0.0))
        assert diff.max() <= FP16_TOL
    else:
        assert diff.max() <= FP32_TOL


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_batched_run_equals_per_sample_runs(artifacts: Artifacts, family: str, config: str):
    _, path = artifacts.get(family, config)
    executor = load_executor(path, chunk_size=7)  # several chunks, the last one short
    ids = sample_ids(24, seed=3)
    with kernels.rowwise_products():  # matrix products that do not depend on the other rows
        together = executor.predict(ids)
        alone = np.concatenate([executor.predict(row[None]) for row in ids])
    np.testing.assert_array_equal(together, alone)
    # with BLAS the rows of a product may differ in the last bits between call sizes
    fast = load_executor(path).predict(ids)
    tol = 5e-2 if config.endswith("fp16") else 1e-5
    np.testing.assert_allclose(fast, together, rtol=tol, atol=tol)


@pytest.mark.parametrize(
    ("target", "config"),
    [("iOS16", "mlprogram-fp16"), ("iOS17", "mlprogram-fp32"), ("iOS18", "mlprogram-fp16")],
)
def test_later_deployment_targets(artifacts: Artifacts, target: str, config: str):
    model, path = artifacts.get("ensemble", config, target)
    executor = load_executor(path)
    if target in ("iOS17", "iOS18"):
        assert {"select", "greater_equal"} <= executor.op_types  # negative-index handling of gather
    ids = sample_ids(100)
    diff = float(np.abs(softmax(executor.predict(ids)) - torch_probs(model, ids)).max())
    OBSERVED[f"ensemble {config} {target}"] = diff
    assert diff <= (FP16_TOL if config.endswith("fp16") else FP32_TOL)


def test_neuralnetwork_with_fp16_weights(artifacts: Artifacts, tmp_path: Path):
    from coremltools.models.neural_network.quantization_utils import quantize_weights

    model, path = artifacts.get("ensemble", "neuralnetwork")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = quantize_weights(ct.models.MLModel(str(path), skip_model_load=True), nbits=16)
    half_path = tmp_path / "half.mlmodel"
    half.save(str(half_path))
    spec = half.get_spec()
    assert any(len(layer.innerProduct.weights.float16Value) for layer in spec.neuralNetwork.layers)
    ids = sample_ids(100)
    full = load_executor(path).predict(ids)
    halved = load_executor(half_path).predict(ids)
    assert not np.array_equal(full, halved)  # the fp16 weights were really used
    diff = float(np.abs(softmax(halved) - torch_probs(model, ids)).max())
    OBSERVED["ensemble neuralnetwork fp16-weights"] = diff
    assert diff <= FP16_TOL


# ----------------------------------------------------------------------------- refusal of unknown ops


def _save_program(path: Path, body: Callable, target=None, precision=None) -> Path:
    target = target or ct.target.iOS15

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, SEQ), dtype=types.int32)], opset_version=target)
    def program(input_ids):
        return body(input_ids)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = ct.convert(
            program,
            convert_to="mlprogram",
            minimum_deployment_target=target,
            compute_precision=precision or ct.precision.FLOAT32,
            skip_model_load=True,
        )
    ml.save(str(path))
    return path


def test_unknown_op_is_refused_at_load(tmp_path: Path):
    def body(ids):
        x = mb.cast(x=ids, dtype="fp32")
        x = mb.cumsum(x=x, axis=1, name="running_total")
        x = mb.topk(x=x, k=9, axis=-1, name="best_nine")[0]
        return mb.mul(x=x, y=np.float32(2.0), name="classLogits")

    path = _save_program(tmp_path / "cumsum.mlpackage", body)
    with pytest.raises(UnsupportedOpError) as info:
        load_executor(path)
    message = str(info.value)
    assert "cumsum" in message and "running_total" in message
    assert "topk" in message and "best_nine" in message
    assert set(info.value.unsupported) == {"cumsum", "topk"}


def test_op_missing_from_the_registry_is_refused(artifacts: Artifacts, monkeypatch):
    _, package = artifacts.get("ensemble", "mlprogram-fp32")
    monkeypatch.delitem(MIL_OPS, "gelu")
    monkeypatch.delitem(MIL_OPS, "layer_norm")
    with pytest.raises(UnsupportedOpError, match=r"gelu \(at '.+'.*layer_norm \(at '"):
        load_executor(package)
    _, network = artifacts.get("ensemble", "neuralnetwork")
    monkeypatch.delitem(NN_LAYERS, "innerProduct")
    with pytest.raises(UnsupportedOpError, match=r"innerProduct \(at 'linear_\d+'"):
        load_executor(network)


# ----------------------------------------------------------------------------- weights come from the blob


def _blob_records(weight_file: Path) -> list[tuple[int, int]]:
    """(data offset, size) of every blob in a weight.bin, parsed here independently of the executor."""
    data = weight_file.read_bytes()
    count = struct.unpack_from("<I", data, 0)[0]
    records, offset = [], 64
    for _ in range(count):
        sentinel, _, size, data_offset = struct.unpack_from("<IIQQ", data, offset)
        assert sentinel == 0xDEADBEEF
        records.append((data_offset, size))
        offset = (data_offset + size + 63) // 64 * 64
    return records


@pytest.mark.parametrize("reader", ["native", "python"])
def test_corrupting_the_weight_blob_changes_the_output(artifacts: Artifacts, tmp_path: Path, reader: str):
    _, package = artifacts.get("ensemble", "mlprogram-fp32")
    copy = tmp_path / "copy.mlpackage"
    shutil.copytree(package, copy)
    ids = sample_ids(50)
    before = load_executor(copy, blob_reader=reader).predict(ids)
    weight_file = copy / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    offset, size = max(_blob_records(weight_file), key=lambda r: r[1])
    raw = bytearray(weight_file.read_bytes())
    rng = np.random.default_rng(0)
    raw[offset : offset + size] = rng.standard_normal(size // 4).astype(np.float32).tobytes()
    weight_file.write_bytes(bytes(raw))
    after = load_executor(copy, blob_reader=reader).predict(ids)
    assert not np.allclose(before, after, atol=1e-3)


def test_python_blob_reader_matches_native(artifacts: Artifacts):
    for config in ("mlprogram-fp32", "mlprogram-fp16"):
        _, package = artifacts.get("ensemble", config)
        ids = sample_ids(40)
        native = load_executor(package, blob_reader="native").predict(ids)
        python = load_executor(package, blob_reader="python").predict(ids)
        np.testing.assert_array_equal(native, python)


def test_mlmodel_file_holding_an_ml_program(artifacts: Artifacts, tmp_path: Path):
    _, package = artifacts.get("cnn-same-gelu-maxmeanmasked", "mlprogram-fp32")
    data = package / "Data" / "com.apple.CoreML"
    shutil.copy(data / "model.mlmodel", tmp_path / "program.mlmodel")
    shutil.copytree(data / "weights", tmp_path / "weights")
    ids = sample_ids(30)
    executor = load_executor(tmp_path / "program.mlmodel")
    assert executor.format == "mlprogram"
    np.testing.assert_array_equal(executor.predict(ids), load_executor(package).predict(ids))


# ----------------------------------------------------------------------------- dtypes and batching rules


def test_fp16_ops_round_between_ops(tmp_path: Path):
    third, tenth, shift = np.float16(1 / 3), np.float16(0.1), np.float16(1.5)

    def body(ids):
        x = mb.cast(x=ids, dtype="fp16")
        x = mb.mul(x=x, y=third)
        x = mb.add(x=x, y=tenth)
        x = mb.real_div(x=x, y=mb.add(x=x, y=shift))  # divisor not constant: stays a division
        x = mb.sub(x=x, y=np.float16(0.013))
        return mb.cast(x=x, dtype="fp32", name="classLogits")

    executor = load_executor(_save_program(tmp_path / "fp16.mlpackage", body))
    assert {"mul", "add", "real_div", "sub", "cast"} <= executor.op_types
    ids = sample_ids(64)
    h = ids.astype(np.float16) * third + tenth  # numpy float16: each op correctly rounded to fp16
    expected = (h / (h + shift) - np.float16(0.013)).astype(np.float32)
    np.testing.assert_array_equal(executor.predict(ids), expected)
    # rounding only at the end would give other numbers: the executor rounds after every op
    f = ids.astype(np.float32) * np.float32(third) + np.float32(tenth)
    once = (f / (f + np.float32(shift)) - np.float32(np.float16(0.013))).astype(np.float16).astype(np.float32)
    assert not np.array_equal(expected, once)


def test_program_that_moves_the_batch_axis_runs_per_sample(tmp_path: Path):
    w = np.random.default_rng(0).standard_normal((SEQ, 9)).astype(np.float32)

    def body(ids):
        x = mb.cast(x=ids, dtype="fp32")
        x = mb.reshape(x=x, shape=[SEQ], name="flatten_away_batch")
        x = mb.matmul(x=mb.expand_dims(x=x, axes=[0]), y=w)
        return mb.mul(x=x, y=np.float32(1.0), name="classLogits")

    executor = load_executor(_save_program(tmp_path / "flat.mlpackage", body))
    assert not executor.batched
    assert "flatten_away_batch" in executor.batch_fallback
    ids = sample_ids(20)
    np.testing.assert_allclose(executor.predict(ids), ids.astype(np.float32) @ w, rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------- API edges


def test_predict_validates_its_input(artifacts: Artifacts):
    _, path = artifacts.get("compact-same-relu", "mlprogram-fp32")
    executor = load_executor(path)
    assert executor.predict(np.zeros((0, SEQ), np.int64)).shape == (0, 9)
    row = sample_ids(1)[0]
    np.testing.assert_array_equal(executor.predict(row), executor.predict(row[None]))
    np.testing.assert_array_equal(executor.predict(row[None].astype(np.float64)), executor.predict(row[None]))
    with pytest.raises(ValueError, match="shape"):
        executor.predict(np.zeros((3, SEQ + 1), np.int32))
    with pytest.raises(ValueError, match="integer"):
        executor.predict(np.full((1, SEQ), 0.5))
    assert "conv" in executor.op_types and "const" in executor.op_types


def test_load_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(ExportError, match="does not exist"):
        load_executor(tmp_path / "missing.mlpackage")
    garbage = tmp_path / "garbage.mlmodel"
    garbage.write_bytes(b"\xff\x00not a model" * 10)
    with pytest.raises(ExportError, match="not a Core ML model"):
        load_executor(garbage)
    folder = tmp_path / "folder.mlpackage"
    folder.mkdir()
    with pytest.raises(ExportError, match=r"Manifest\.json"):
        load_executor(folder)
