"""Read Caffe's .caffemodel (binary protobuf) and .prototxt (protobuf text) without Caffe.

Both are a ``caffe.NetParameter``. We describe the part of caffe.proto that holds layers,
their blobs and the convolution and pooling parameters, build that schema at run time with
the ``protobuf`` package (no protoc, no generated code), and let protobuf parse: its C parser
reads a several-hundred-MB model in seconds with no 64 MB limit, reads packed and unpacked
floats alike, and its text parser reads the prototxt. Fields outside the schema are skipped.
Both the current ``layer`` list (field 100) and the legacy V1 ``layers`` list (field 2) are
read, and blob shapes given as ``shape.dim`` or as legacy num/channels/height/width.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import NamesSettings

#: The V1 layer types (caffe.proto's V1LayerParameter.LayerType), by number.
V1_TYPES = {
    0: "None", 1: "Accuracy", 2: "BNLL", 3: "Concat", 4: "Convolution", 5: "Data",
    6: "Dropout", 7: "EuclideanLoss", 8: "Flatten", 9: "HDF5Data", 10: "HDF5Output",
    11: "Im2col", 12: "ImageData", 13: "InfogainLoss", 14: "InnerProduct", 15: "LRN",
    16: "MultinomialLogisticLoss", 17: "Pooling", 18: "ReLU", 19: "Sigmoid", 20: "Softmax",
    21: "SoftmaxWithLoss", 22: "Split", 23: "TanH", 24: "WindowData", 25: "Eltwise",
    26: "Power", 27: "SigmoidCrossEntropyLoss", 28: "HingeLoss", 29: "MemoryData",
    30: "ArgMax", 31: "Threshold", 32: "DummyData", 33: "Slice", 34: "MVN", 35: "AbsVal",
    36: "Silence", 37: "ContrastiveLoss", 38: "Exp", 39: "Deconvolution",
}  # fmt: skip
_V1_NAMES = {
    0: "NONE", 1: "ACCURACY", 2: "BNLL", 3: "CONCAT", 4: "CONVOLUTION", 5: "DATA", 6: "DROPOUT",
    7: "EUCLIDEAN_LOSS", 8: "FLATTEN", 9: "HDF5_DATA", 10: "HDF5_OUTPUT", 11: "IM2COL",
    12: "IMAGE_DATA", 13: "INFOGAIN_LOSS", 14: "INNER_PRODUCT", 15: "LRN",
    16: "MULTINOMIAL_LOGISTIC_LOSS", 17: "POOLING", 18: "RELU", 19: "SIGMOID", 20: "SOFTMAX",
    21: "SOFTMAX_LOSS", 22: "SPLIT", 23: "TANH", 24: "WINDOW_DATA", 25: "ELTWISE", 26: "POWER",
    27: "SIGMOID_CROSS_ENTROPY_LOSS", 28: "HINGE_LOSS", 29: "MEMORY_DATA", 30: "ARGMAX",
    31: "THRESHOLD", 32: "DUMMY_DATA", 33: "SLICE", 34: "MVN", 35: "ABSVAL", 36: "SILENCE",
    37: "CONTRASTIVE_LOSS", 38: "EXP", 39: "DECONVOLUTION",
}  # fmt: skip

# (name, number, type, repeated, message or enum type) per message of the schema.
_OPTIONAL, _REPEATED = 1, 3
_SCHEMA = {
    "BlobShape": [("dim", 1, "int64", True, None)],
    "BlobProto": [
        ("num", 1, "int32", False, None), ("channels", 2, "int32", False, None),
        ("height", 3, "int32", False, None), ("width", 4, "int32", False, None),
        ("data", 5, "float", True, None), ("diff", 6, "float", True, None),
        ("shape", 7, "message", False, "BlobShape"), ("double_data", 8, "double", True, None),
    ],
    "ConvolutionParameter": [
        ("num_output", 1, "uint32", False, None), ("bias_term", 2, "bool", False, None),
        ("pad", 3, "uint32", True, None), ("kernel_size", 4, "uint32", True, None),
        ("group", 5, "uint32", False, None), ("stride", 6, "uint32", True, None),
        ("pad_h", 9, "uint32", False, None), ("pad_w", 10, "uint32", False, None),
        ("kernel_h", 11, "uint32", False, None), ("kernel_w", 12, "uint32", False, None),
        ("stride_h", 13, "uint32", False, None), ("stride_w", 14, "uint32", False, None),
        ("dilation", 18, "uint32", True, None),
    ],
    "PoolingParameter": [
        ("pool", 1, "enum", False, "PoolingParameter.PoolMethod"),
        ("kernel_size", 2, "uint32", False, None), ("stride", 3, "uint32", False, None),
        ("pad", 4, "uint32", False, None),
    ],
    "LayerParameter": [
        ("name", 1, "string", False, None), ("type", 2, "string", False, None),
        ("bottom", 3, "string", True, None), ("top", 4, "string", True, None),
        ("blobs", 7, "message", True, "BlobProto"),
        ("convolution_param", 106, "message", False, "ConvolutionParameter"),
        ("pooling_param", 121, "message", False, "PoolingParameter"),
    ],
    "V1LayerParameter": [
        ("bottom", 2, "string", True, None), ("top", 3, "string", True, None),
        ("name", 4, "string", False, None),
        ("type", 5, "enum", False, "V1LayerParameter.LayerType"),
        ("blobs", 6, "message", True, "BlobProto"),
        ("convolution_param", 10, "message", False, "ConvolutionParameter"),
        ("pooling_param", 19, "message", False, "PoolingParameter"),
    ],
    "NetParameter": [
        ("name", 1, "string", False, None), ("layers", 2, "message", True, "V1LayerParameter"),
        ("layer", 100, "message", True, "LayerParameter"),
    ],
}  # fmt: skip
_ENUMS = {
    "PoolingParameter": ("PoolMethod", {"MAX": 0, "AVE": 1, "STOCHASTIC": 2}),
    "V1LayerParameter": ("LayerType", {name: n for n, name in _V1_NAMES.items()}),
}
_PACKED = {"float", "double", "int64"}  # caffe.proto declares these repeated fields packed
_NET: type | None = None


class CaffeFormatError(NamesSettings, ValueError):
    """A file that is not a readable Caffe model or prototxt, or not one the import asked for
    (a message naming a setting is a template: ``NamesSettings``)."""


@dataclass
class CaffeLayer:
    """One layer: its parameters (from a prototxt) and its blobs (from a caffemodel)."""

    name: str
    type: str
    bottom: list[str] = field(default_factory=list)
    top: list[str] = field(default_factory=list)
    blobs: list[np.ndarray] = field(default_factory=list)
    params: dict = field(default_factory=dict)  # kernel, stride, pad, group, dilation, ...


def net_message() -> type:
    """The message class of the minimal NetParameter schema (built once)."""
    global _NET
    if _NET is not None:
        return _NET
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    types = descriptor_pb2.FieldDescriptorProto
    scalar = {
        "int32": types.TYPE_INT32, "int64": types.TYPE_INT64, "uint32": types.TYPE_UINT32,
        "float": types.TYPE_FLOAT, "double": types.TYPE_DOUBLE, "bool": types.TYPE_BOOL,
        "string": types.TYPE_STRING, "message": types.TYPE_MESSAGE, "enum": types.TYPE_ENUM,
    }  # fmt: skip
    proto = descriptor_pb2.FileDescriptorProto(
        name="splitbrain_caffe_subset.proto", package="splitbrain_caffe", syntax="proto2"
    )
    for message, fields in _SCHEMA.items():
        described = proto.message_type.add(name=message)
        if message in _ENUMS:
            enum_name, values = _ENUMS[message]
            enum = described.enum_type.add(name=enum_name)
            for value_name, number in values.items():
                enum.value.add(name=value_name, number=number)
        for name, number, kind, repeated, type_name in fields:
            added = described.field.add(
                name=name, number=number, type=scalar[kind],
                label=_REPEATED if repeated else _OPTIONAL,
            )  # fmt: skip
            if type_name:
                added.type_name = f".splitbrain_caffe.{type_name}"
            if repeated and kind in _PACKED:
                added.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName("splitbrain_caffe.NetParameter")
    _NET = message_factory.GetMessageClass(descriptor)
    return _NET


def _blob_array(blob) -> np.ndarray:
    values = blob.data if len(blob.data) else blob.double_data
    array = np.asarray(values, dtype=np.float32)
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    else:  # legacy 4-d num, channels, height, width
        shape = (blob.num, blob.channels, blob.height, blob.width)
    if int(np.prod(shape)) != array.size:
        raise ValueError(f"a blob of shape {shape} holds {array.size} values")
    return array.reshape(shape)


def _conv_params(param) -> dict:
    def one(values, single: int, default: int) -> int:
        values = list(values)
        if len(set(values)) > 1:
            raise ValueError(f"non-square values {values}")
        return values[0] if values else (single or default)

    return {
        "num_output": param.num_output,
        "kernel": one(param.kernel_size, param.kernel_h, 1),
        "stride": one(param.stride, param.stride_h, 1),
        "pad": one(param.pad, param.pad_h, 0),
        "group": param.group or 1,
        "dilation": one(param.dilation, 0, 1),
        "bias": param.bias_term if param.HasField("bias_term") else True,
    }


def _layers(net) -> list[CaffeLayer]:
    layers = []
    for layer, kind in [(x, x.type) for x in net.layer] + [
        (x, V1_TYPES.get(x.type, str(x.type))) for x in net.layers
    ]:
        params: dict = {}
        if kind == "Convolution" and layer.HasField("convolution_param"):
            params = _conv_params(layer.convolution_param)
        elif kind == "Pooling" and layer.HasField("pooling_param"):
            pooling = layer.pooling_param
            method = {0: "max", 1: "ave", 2: "stochastic"}[pooling.pool]
            params = {"pool": method, "kernel": pooling.kernel_size,
                      "stride": pooling.stride or 1, "pad": pooling.pad}  # fmt: skip
        blobs = [_blob_array(blob) for blob in layer.blobs]
        layers.append(
            CaffeLayer(layer.name, kind, list(layer.bottom), list(layer.top), blobs, params)
        )
    return layers


def read_caffemodel(path: str | os.PathLike) -> list[CaffeLayer]:
    """The layers of a binary .caffemodel, with their blobs as float32 arrays."""
    from google.protobuf.message import DecodeError

    data = Path(path).read_bytes()
    net = net_message()()
    try:
        net.ParseFromString(data)
        layers = _layers(net)
    except (DecodeError, ValueError, RuntimeError) as error:
        reason = str(error) or "the protobuf does not parse"
        raise CaffeFormatError(f"{path}: not a readable caffemodel ({reason})") from None
    if not layers:
        raise CaffeFormatError(f"{path}: not a readable caffemodel (no layers)")
    return layers


def read_prototxt(path: str | os.PathLike) -> list[CaffeLayer]:
    """The layers of a .prototxt (text NetParameter) with their parameters, no blobs."""
    from google.protobuf import text_format

    net = net_message()()
    try:
        text_format.Parse(Path(path).read_text(), net, allow_unknown_field=True)
        layers = _layers(net)
    except (text_format.ParseError, ValueError, UnicodeDecodeError) as error:
        raise CaffeFormatError(f"{path}: not a readable prototxt ({error})") from None
    if not layers:
        raise CaffeFormatError(f"{path}: not a readable prototxt (no layers)")
    return layers
