"""Time `splitbrain import-caffe` on a file the size of the released one.

    python benchmarks/caffe_import.py

Not a test (tests/unit/inference/test_caffe.py proves the mapping on small files). Writes a
caffemodel in the released layout at full width (conv1 96 ... fc6/fc7 4096, random weights, the
blocks between the halves zero; about 230 MB, over protobuf's old 64 MB limit) and its deploy
prototxt, then times reading it and the whole conversion, and prints the parameter counts.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from splitbrain.inference.caffe_format import net_message, read_caffemodel
from splitbrain.inference.caffe_import import import_caffe
from splitbrain.models import count_parameters
from splitbrain.weights import save

# name: (kernel, stride, pad, group, dilation, outputs), the released deploy_lab.prototxt
RELEASED = {
    "conv1": (11, 4, 0, 1, 1, 96),
    "conv2": (5, 1, 2, 2, 1, 256),
    "conv3": (3, 1, 1, 1, 1, 384),
    "conv4": (3, 1, 1, 2, 1, 384),
    "conv5": (3, 1, 1, 2, 1, 256),
    "fc6": (6, 1, 5, 1, 2, 4096),
    "fc7": (1, 1, 0, 1, 1, 4096),
}
POOLS = {"conv1": "pool1", "conv2": "pool2", "conv5": "pool5"}


def write_released_layout(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    net = net_message()()
    text = 'layer { name: "data_lab" type: "Convolution" convolution_param { num_output: 3 '
    text += "kernel_size: 1 group: 3 } }\n"
    layer = net.layer.add(name="data_lab", type="Convolution")
    for values in ([1.0, 1.0, 1.0], [-50.0, 0.0, 0.0]):
        blob = layer.blobs.add()
        blob.shape.dim.extend([3] if values[0] == -50.0 else [3, 1, 1, 1])
        blob.data.extend(values)
    channels = 3
    for name, (k, s, p, g, d, n) in RELEASED.items():
        weight = rng.normal(0, 0.01, (n, channels // g, k, k)).astype(np.float32)
        if g == 1:  # the halves were trained apart: nothing joins them
            if name == "conv1":
                weight[: n // 2, 1:], weight[n // 2 :, :1] = 0, 0
            else:
                weight[: n // 2, channels // 2 :], weight[n // 2 :, : channels // 2] = 0, 0
        layer = net.layer.add(name=name, type="Convolution")
        for array in (weight, np.zeros(n, np.float32)):
            blob = layer.blobs.add()
            blob.shape.dim.extend(array.shape)
            blob.data.extend(array.ravel())
        text += f'layer {{ name: "{name}" type: "Convolution" convolution_param {{ '
        text += f"num_output: {n} kernel_size: {k} stride: {s} pad: {p} group: {g} "
        text += f"dilation: {d} }} }}\n"
        if name in POOLS:
            text += f'layer {{ name: "{POOLS[name]}" type: "Pooling" pooling_param {{ '
            text += "pool: MAX kernel_size: 3 stride: 2 } }\n"
        channels = n
    model, prototxt = folder / "released_layout.caffemodel", folder / "deploy_lab.prototxt"
    model.write_bytes(net.SerializeToString())
    prototxt.write_text(text)
    return model, prototxt


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model_path, prototxt = write_released_layout(Path(tmp))
        written = time.perf_counter() - start
        size = model_path.stat().st_size
        start = time.perf_counter()
        layers = read_caffemodel(model_path)
        read = time.perf_counter() - start
        blobs = sum(b.size for layer in layers for b in layer.blobs)
        start = time.perf_counter()
        model, source = import_caffe(model_path, prototxt)
        save(model, Path(tmp) / "w.safetensors", {"source": source})
        converted = time.perf_counter() - start
    print(f"caffemodel: {size / 1e6:,.0f} MB, {blobs:,} values (written in {written:.1f} s)")
    print(f"read_caffemodel: {read:.1f} s")
    print(f"import_caffe + save (read, SHA-256, map, write safetensors): {converted:.1f} s")
    towers = sum(count_parameters(e.tower) for e in model.encoders)
    print(f"model: {count_parameters(model):,} parameters, {towers:,} in the two towers")


if __name__ == "__main__":
    main()
