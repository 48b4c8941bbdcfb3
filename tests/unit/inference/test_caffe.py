"""Importing Caffe split-brain weights: files written here in the released layout, byte by byte
with an encoder of the protobuf wire format that shares nothing with the reader."""

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import splitbrain as sb
from splitbrain.cli import main
from splitbrain.inference.caffe_format import CaffeFormatError, read_caffemodel
from splitbrain.inference.caffe_import import import_caffe

# The released network at 1/8 width: (kernel, stride, pad, group, dilation, outputs).
LAYERS = {
    "conv1": (11, 4, 0, 1, 1, 12),
    "conv2": (5, 1, 2, 2, 1, 32),
    "conv3": (3, 1, 1, 1, 1, 48),
    "conv4": (3, 1, 1, 2, 1, 48),
    "conv5": (3, 1, 1, 2, 1, 32),
    "fc6": (6, 1, 5, 1, 2, 64),
    "fc7": (1, 1, 0, 1, 1, 64),
}
POOL_AFTER = {"conv1": "pool1", "conv2": "pool2", "conv5": "pool5"}
DATA_LAB = (np.array([1.0, 0.9, 1.1]), np.array([-50.0, 1.0, -2.0]))  # w * lab + b per channel


# ---------------------------------------------------------------- protobuf wire format


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # length-delimited (wire type 2)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _number(number: int, value: int) -> bytes:  # varint (wire type 0)
    return _varint(number << 3) + _varint(value)


def _blob(array: np.ndarray, legacy: bool) -> bytes:
    """BlobProto: shape (7) of dims (1, packed), data (5) packed; legacy: num, channels,
    height, width (1-4) and data as unpacked fixed32 values."""
    values = array.astype("<f4").ravel()
    if legacy:
        dims = (1,) * (4 - array.ndim) + array.shape
        head = b"".join(_number(i + 1, d) for i, d in enumerate(dims))
        return head + b"".join(_varint(5 << 3 | 5) + struct.pack("<f", v) for v in values)
    shape = _field(1, b"".join(_varint(d) for d in array.shape))
    return _field(7, shape) + _field(5, values.tobytes())


def _caffemodel(blobs: dict[str, list[np.ndarray]], legacy: bool) -> bytes:
    """NetParameter: layer (100: name 1, type 2, blobs 7) or V1 layers (2: name 4, type 5
    as the enum CONVOLUTION = 4, blobs 6)."""
    out = b""
    for name, arrays in blobs.items():
        if legacy:
            body = _field(4, name.encode()) + _number(5, 4)
            body += b"".join(_field(6, _blob(a, legacy)) for a in arrays)
            out += _field(2, body)
        else:
            body = _field(1, name.encode()) + _field(2, b"Convolution")
            body += b"".join(_field(7, _blob(a, legacy)) for a in arrays)
            out += _field(100, body)
    return out


def _prototxt(layers: dict, legacy: bool) -> str:
    """A deploy file like the released deploy_lab.prototxt (with fields we do not read)."""
    conv, pool = ("CONVOLUTION", "POOLING") if legacy else ('"Convolution"', '"Pooling"')
    key = "layers" if legacy else "layer"
    text = 'input: "img_lab"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 227\ninput_dim: 227\n'
    text += f'{key} {{ name: "data_lab" type: {conv} bottom: "img_lab" top: "data_lab"\n'
    text += "  param { lr_mult: 0 decay_mult: 0 }\n"
    text += "  convolution_param { kernel_size: 1 num_output: 3 group: 3 } }\n"
    bottom = "data_lab"
    for name, (k, s, p, g, d, n) in layers.items():
        text += f'{key} {{ name: "{name}" type: {conv} bottom: "{bottom}" top: "{name}"\n'
        text += f"  convolution_param {{ num_output: {n} kernel_size: {k} stride: {s} pad: {p}"
        text += f" group: {g} dilation: {d}\n"
        text += '    weight_filler { type: "gaussian" std: 0.01 } } }\n'
        bottom = name
        if name in POOL_AFTER:
            pooled = POOL_AFTER[name]
            text += f'{key} {{ name: "{pooled}" type: {pool} bottom: "{name}" top: "{pooled}"\n'
            text += "  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }\n"
            bottom = pooled
    return text


def _weights(l_first: bool, joined: bool = False, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Random weights of the layout; the blocks that join the halves are zero unless
    ``joined``; ``l_first``: the first half of conv1's filters reads L."""
    rng = np.random.default_rng(seed)
    weight, bias = DATA_LAB
    blobs = {"data_lab": [weight.reshape(3, 1, 1, 1).astype(np.float32), bias.astype(np.float32)]}
    channels = 3
    for name, (k, _, _, g, _, n) in LAYERS.items():
        fan_in = channels // g * k * k
        std = (0.02 if name == "conv1" else 1.0) / np.sqrt(fan_in)  # activations near 1
        weight = rng.normal(0, std, (n, channels // g, k, k))
        if not joined and g == 1:
            if name == "conv1":
                reads_l = slice(0, n // 2) if l_first else slice(n // 2, None)
                reads_ab = slice(n // 2, None) if l_first else slice(0, n // 2)
                weight[reads_l, 1:] = 0
                weight[reads_ab, :1] = 0
            else:
                weight[: n // 2, channels // 2 :] = 0
                weight[n // 2 :, : channels // 2] = 0
        blobs[name] = [weight.astype(np.float32), rng.normal(0, 0.1, n).astype(np.float32)]
        channels = n
    return blobs


def _reference(blobs: dict, lab: torch.Tensor) -> dict[str, torch.Tensor]:
    """The merged network straight from the blobs, in float64, Caffe's ceil-mode pooling."""
    w, b = (torch.from_numpy(a).double() for a in blobs["data_lab"])
    x = F.conv2d(lab.double(), w, b, groups=3)
    out = {}
    for name, (_, s, p, g, d, _) in LAYERS.items():
        weight, bias = (torch.from_numpy(a).double() for a in blobs[name])
        x = F.relu(F.conv2d(x, weight, bias, s, p, d, g))
        out[name] = x
        if name in POOL_AFTER:
            x = F.max_pool2d(x, 3, 2, ceil_mode=True)
            out[POOL_AFTER[name]] = x
    return out


def _decoded(path: Path, written: dict) -> dict[str, list[np.ndarray]]:
    """The blobs as our reader decodes them, in the shapes they were written in (legacy
    files store biases as 1x1x1xN)."""
    decoded = {layer.name: layer.blobs for layer in read_caffemodel(path)}
    return {
        name: [a.reshape(w.shape) for a, w in zip(decoded[name], arrays, strict=True)]
        for name, arrays in written.items()
    }


def _write(tmp_path: Path, blobs: dict, legacy: bool) -> tuple[Path, Path]:
    model, proto = tmp_path / "model.caffemodel", tmp_path / "deploy_lab.prototxt"
    model.write_bytes(_caffemodel(blobs, legacy))
    proto.write_text(_prototxt(LAYERS, legacy))
    return model, proto


@pytest.mark.parametrize(("legacy", "l_first"), [(False, True), (True, False)],
                         ids=["current", "legacy-V1"])  # fmt: skip
def test_imported_features_equal_a_forward_from_the_blobs(tmp_path, legacy, l_first):
    blobs = _weights(l_first)
    model_path, proto = _write(tmp_path, blobs, legacy)
    decoded = _decoded(model_path, blobs)
    for name, arrays in blobs.items():
        for ours, written in zip(decoded[name], arrays, strict=True):
            np.testing.assert_array_equal(ours, written)
    out = tmp_path / "w.safetensors"
    assert main(["import-caffe", str(model_path), "--prototxt", str(proto), "--out", str(out)]) == 0
    model = sb.load(out)
    assert model.config.preset == "caffe" and model.config.variant == "splitbrain"
    rgb = torch.rand(2, 3, 227, 227, generator=torch.Generator().manual_seed(0))
    reference = _reference(decoded, sb.color.rgb_to_lab(rgb))
    names = [*LAYERS, *POOL_AFTER.values()]
    ours = model.features(rgb, names)
    for name in names:
        expected = reference[name]
        if not l_first:  # Caffe's channels are (ab half, L half); ours (L half, ab half)
            expected = torch.cat(expected.chunk(2, 1)[::-1], 1)
        assert ours[name].shape == expected.shape, name
        assert (ours[name].double() - expected).abs().max() < 1e-5, name
    assert ours["fc7"].shape[-1] == 6  # the deploy geometry: fc6/fc7 at 6x6 from 227 px


def test_records_where_it_came_from(tmp_path, capsys):
    model_path, proto = _write(tmp_path, _weights(True), legacy=False)
    out = tmp_path / "w.safetensors"
    main(["import-caffe", str(model_path), "--prototxt", str(proto), "--out", str(out)])
    import hashlib

    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert f"source: caffe:model.caffemodel sha256:{digest}" in capsys.readouterr().out


def test_joined_halves_are_refused_unless_one_full_width_network_is_asked(tmp_path, capsys):
    blobs = _weights(True, joined=True)
    model_path, proto = _write(tmp_path, blobs, legacy=False)
    out = tmp_path / "w.safetensors"
    command = ["import-caffe", str(model_path), "--prototxt", str(proto), "--out", str(out)]
    assert main(command) == 1
    error = capsys.readouterr().err
    assert "layer conv1 joins the two halves" in error and "--full-width" in error
    assert len(error.strip().splitlines()) == 1 and not out.exists()
    assert main([*command, "--full-width"]) == 0
    model = sb.load(out)
    assert model.config.variant == "lab2lab"
    rgb = torch.rand(1, 3, 227, 227, generator=torch.Generator().manual_seed(1))
    reference = _reference(_decoded(model_path, blobs), sb.color.rgb_to_lab(rgb))
    ours = model.features(rgb, list(LAYERS))
    for name in LAYERS:
        assert (ours[name].double() - reference[name]).abs().max() < 1e-5, name


def test_bad_files_give_one_line_naming_the_file(tmp_path, capsys):
    model_path, proto = _write(tmp_path, _weights(True), legacy=False)
    out = str(tmp_path / "w.safetensors")

    def error_of(model: Path, prototxt: Path) -> str:
        assert main(["import-caffe", str(model), "--prototxt", str(prototxt), "--out", out]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    truncated = tmp_path / "truncated.caffemodel"
    truncated.write_bytes(model_path.read_bytes()[:-1000])
    assert f"{truncated}: not a readable caffemodel" in error_of(truncated, proto)

    wider = dict(LAYERS, conv3=(3, 1, 1, 1, 1, 64))  # the prototxt of another width
    mismatched = tmp_path / "mismatched.prototxt"
    mismatched.write_text(_prototxt(wider, legacy=False))
    text = error_of(model_path, mismatched)
    assert "layer conv3 holds" in text and "the prototxt does not match the caffemodel" in text

    other = dict(LAYERS, conv1=(7, 2, 3, 1, 1, 12))  # another architecture's deploy file
    foreign = tmp_path / "other.prototxt"
    foreign.write_text(_prototxt(other, legacy=False))
    assert "layer conv1 has (kernel, stride, pad, dilation|pool) (7, 2, 3, 1)" in error_of(
        model_path, foreign
    )
    with pytest.raises(CaffeFormatError, match="not a readable prototxt"):
        import_caffe(model_path, model_path)  # binary where text belongs
