"""The authors' released split-brain Caffe weights as a ``splitbrain`` model (docs/INTEROP.md).

The released network is the two halves merged into one AlexNet: conv1 reads L, a and b with
its filters in two blocks (one per half), conv2, conv4 and conv5 are grouped in two (the
halves), and conv3, fc6 and fc7 are ungrouped with the blocks joining one half to the other
zero (the halves were trained apart). A 1x1 ``data_lab`` layer centres L. BatchNorm was
folded into the convolutions' biases. We map each half onto one tower of the ``splitbrain``
variant at the ``caffe`` preset (the deploy geometry), with affine BatchNorm that passes the
biases through, and fold ``data_lab`` and our Lab input scaling into conv1. The prediction
heads are not in the released files: the imported model gives features, not colours.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import literal
from ..models import CONV_CHANNELS, PRESETS, SplitBrain
from ..splits import get_split
from ..variants import build
from .caffe_format import CaffeFormatError, CaffeLayer, read_caffemodel, read_prototxt

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")
GROUPED = {"conv2", "conv4", "conv5"}
POOLS = ("pool1", "pool2", "pool5")
CROSS_TOLERANCE = 1e-6  # relative to the layer's largest weight


def sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_geometry(prototxt: str, layers: dict[str, CaffeLayer]) -> None:
    """The deploy file's layers must have the released geometry (the ``caffe`` preset)."""
    geometry = PRESETS["caffe"]
    for name in (*LAYERS, *POOLS):
        if name not in layers:
            raise CaffeFormatError(f"{prototxt}: no layer {name}: not the released split-brain "
                                   "AlexNet")  # fmt: skip
        p = layers[name].params
        kernel, stride, pad, *dilation = geometry[name]
        have = (p.get("kernel"), p.get("stride"), p.get("pad"), p.get("dilation", 1))
        want = (kernel, stride, pad, dilation[0] if dilation else 1)
        if name.startswith("pool"):
            have, want = (*have[:3], p.get("pool")), (*want[:3], "max")
        if have != want:
            raise CaffeFormatError(
                f"{prototxt}: layer {name} has (kernel, stride, pad, dilation|pool) {have}, "
                f"the released network {want}: not the released split-brain AlexNet"
            )
        group = p.get("group", 1)
        if not name.startswith("pool") and group != (2 if name in GROUPED else 1):
            raise CaffeFormatError(f"{prototxt}: layer {name} has group {group}, the released "
                                   f"network {2 if name in GROUPED else 1}")  # fmt: skip


def _blobs(model_path: str, prototxt: str, layers: dict[str, CaffeLayer], blobs: dict) -> dict:
    """(weight, bias) per layer as float64 arrays, checked against the prototxt's shapes."""
    out = {}
    in_channels = 3
    for name in ("data_lab", *LAYERS):
        if name == "data_lab" and name not in layers:
            continue
        if name not in blobs or len(blobs[name]) < 1:
            raise CaffeFormatError(f"{model_path}: no weights for layer {name}")
        p = layers[name].params
        weight = blobs[name][0]
        expected = p["num_output"] * (in_channels // p["group"]) * p["kernel"] ** 2
        if weight.size != expected:
            raise CaffeFormatError(
                f"{model_path}: layer {name} holds {weight.size} weights, {prototxt} asks for "
                f"{p['num_output']}x{in_channels // p['group']}x{p['kernel']}x{p['kernel']}: "
                "the prototxt does not match the caffemodel"
            )
        weight = weight.reshape(p["num_output"], in_channels // p["group"], p["kernel"], -1)
        bias = blobs[name][1].reshape(-1) if len(blobs[name]) > 1 else np.zeros(p["num_output"])
        out[name] = (weight.astype(np.float64), bias.astype(np.float64))
        if name != "data_lab":
            in_channels = p["num_output"]
    return out


def _fold_input(conv1: tuple, data_lab: tuple | None, shift, scale) -> tuple:
    """conv1 on our normalised input: ours = (lab - shift) * scale, Caffe's = w * lab + b."""
    weight, bias = conv1
    w = np.ones(3) if data_lab is None else data_lab[0].reshape(3)
    b = np.zeros(3) if data_lab is None else data_lab[1].reshape(3)
    per_channel = w / np.asarray(scale)  # d caffe_input / d our_input
    offset = w * np.asarray(shift) + b  # caffe_input when our input is 0
    folded = weight * per_channel[None, :, None, None]
    return folded, bias + (weight * offset[None, :, None, None]).sum(axis=(1, 2, 3))


def _halves(name: str, weight: np.ndarray, first_reads_l: bool) -> tuple[list, float]:
    """Each half's block of a layer's weight, as (L half, ab half), and the largest weight of
    the blocks that join the halves relative to the layer's largest (0 for grouped layers)."""
    out_half = weight.shape[0] // 2
    if name in GROUPED:
        blocks = [weight[:out_half], weight[out_half:]]
        cross = 0.0
    elif name == "conv1":
        l_rows = slice(0, out_half) if first_reads_l else slice(out_half, None)
        ab_rows = slice(out_half, None) if first_reads_l else slice(0, out_half)
        blocks = [weight[l_rows, :1], weight[ab_rows, 1:]]
        cross = max(np.abs(weight[l_rows, 1:]).max(), np.abs(weight[ab_rows, :1]).max())
    else:
        in_half = weight.shape[1] // 2
        blocks = [weight[:out_half, :in_half], weight[out_half:, in_half:]]
        cross = max(np.abs(weight[:out_half, in_half:]).max(),
                    np.abs(weight[out_half:, :in_half]).max())  # fmt: skip
    if name != "conv1" and not first_reads_l:
        blocks = blocks[::-1]
    largest = max(np.abs(weight).max(), 1e-30)
    return blocks, float(cross / largest)


def _set_block(block: nn.Sequential, weight: np.ndarray, bias: np.ndarray, where: str) -> None:
    """conv -> BatchNorm -> ReLU computing ReLU(conv(x) + bias): BatchNorm passes x through
    (mean 0, variance 1 - eps, so (x - 0) / sqrt(var + eps) = x) and adds the bias."""
    conv, norm = block[0], block[1]
    if tuple(conv.weight.shape) != weight.shape:
        raise CaffeFormatError(
            f"{where}: weights of shape {weight.shape} where the split-brain AlexNet has "
            f"{tuple(conv.weight.shape)}: not the released split-brain AlexNet"
        )
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight.astype(np.float32)))
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0 - norm.eps)
        norm.weight.fill_(1.0)
        norm.bias.copy_(torch.from_numpy(bias.astype(np.float32)))


def _full_width(blocks: dict[str, tuple], where: str) -> SplitBrain:
    """One full-width Lab network (the ``lab2lab`` variant's tower) with the grouped layers
    made block-diagonal: for a merged network whose halves are not separable."""
    width = blocks["conv1"][0].shape[0] / CONV_CHANNELS["conv1"]
    fc = round(blocks["fc6"][0].shape[0] / width)
    model = build("lab2lab", preset="caffe", width=width, bn_affine=True, fc_channels=fc)
    tower = model.encoders[0].tower
    for name in LAYERS:
        weight, bias = blocks[name]
        if name in GROUPED:
            out_half, in_half = weight.shape[0] // 2, weight.shape[1]
            full = np.zeros((weight.shape[0], 2 * in_half, *weight.shape[2:]))
            full[:out_half, :in_half] = weight[:out_half]
            full[out_half:, in_half:] = weight[out_half:]
            weight = full
        _set_block(tower.layers[name], weight, bias, f"{where}: layer {name}")
    return model


def import_caffe(
    caffemodel: str | os.PathLike, prototxt: str | os.PathLike, full_width: bool = False
) -> tuple[SplitBrain, str]:
    """The released network as a ``splitbrain`` model (two towers, the ``caffe`` preset) and
    its provenance (``caffe:NAME sha256:...``); ``full_width`` gives one full-width network
    instead, for files whose halves are joined (a CaffeFormatError says so otherwise)."""
    caffemodel, prototxt = str(caffemodel), str(prototxt)
    layers = {layer.name: layer for layer in read_prototxt(prototxt)}
    _check_geometry(prototxt, layers)
    blobs = {layer.name: layer.blobs for layer in read_caffemodel(caffemodel) if layer.blobs}
    arrays = _blobs(caffemodel, prototxt, layers, blobs)
    source = f"caffe:{Path(caffemodel).name} sha256:{sha256(caffemodel)}"
    space = get_split("lab").space
    arrays["conv1"] = _fold_input(arrays["conv1"], arrays.get("data_lab"), space.shift,
                                  space.scale)  # fmt: skip
    if full_width:
        return _full_width(arrays, caffemodel).eval(), source
    weight = arrays["conv1"][0]
    half = weight.shape[0] // 2
    first_reads_l = np.abs(weight[:half, 1:]).max() <= np.abs(weight[half:, 1:]).max()
    width = weight.shape[0] / CONV_CHANNELS["conv1"]
    fc = round(arrays["fc6"][0].shape[0] / width)
    model = build("splitbrain", preset="caffe", width=width, bn_affine=True, fc_channels=fc)
    l_tower, ab_tower = (e.tower for e in model.encoders)  # L -> ab first, then ab -> L
    for name in LAYERS:
        weight, bias = arrays[name]
        (l_block, ab_block), cross = _halves(name, weight, first_reads_l)
        if cross > CROSS_TOLERANCE:
            raise CaffeFormatError(
                f"{literal(caffemodel)}: layer {name} joins the two halves (the largest weight "
                f"between them is {cross:.2g} of the layer's largest), so it is not two "
                "separable split-brain towers; set {full_width} for one full-width network",
                ("full_width",),
            )
        out_half = bias.shape[0] // 2
        l_bias, ab_bias = bias[:out_half], bias[out_half:]
        if not first_reads_l:
            l_bias, ab_bias = ab_bias, l_bias
        where = f"{caffemodel}: layer {name}"
        _set_block(l_tower.layers[name], l_block, l_bias, where)
        _set_block(ab_tower.layers[name], ab_block, ab_bias, where)
    return model.eval(), source
