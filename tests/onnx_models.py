"""Small ONNX models built in the tests (with the `onnx` package), and the full-scene reference for fixed-size ones."""
from __future__ import annotations

import json

import numpy as np


def save_model(graph, metadata: dict | None, path: str) -> str:
    """An ONNX graph as a checked model file (opset 13) with Deepness-style metadata: JSON-encoded values."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def free_spatial_dims_file(path: str, out: str) -> str:
    """The model at `path` with its height and width made free, written to `out` (for runs that need a file)."""
    import onnx

    model = onnx.load(path)
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "height", "width"
    onnx.save(model, out)
    return out


def free_spatial_dims(path: str, head: int = 0):
    """The model at `path` with its height and width made free, as a Patchwork model.

    The Deepness test models fix 512x512 tiles; their graphs are per-pixel (1x1 convolutions), so the
    same graph on the whole scene is the full-scene call tiled inference must reproduce.
    """
    import onnx
    import onnxruntime as ort

    from patchwork.core.models.onnx import OnnxImageModel, _parse

    model = onnx.load(path)
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "height", "width"
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    meta = {k: _parse(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    return OnnxImageModel(session, meta, "free-" + path.rsplit("/", 1)[-1], head)


def conv_model(path: str, weights: np.ndarray, *, tile: int | None = None, batch: int | None = None,
               softmax: bool = False, metadata: dict | None = None, seed_bias: float = 0.0) -> str:
    """A one-layer convolution [N, C, H, W] → [N, K, H-k+1, W-k+1] (valid padding), optionally softmaxed.

    weights: (K, C, k, k). `tile` fixes the input's height and width, `batch` its batch size;
    metadata values are JSON-encoded as Deepness does.
    """
    from onnx import TensorProto, helper, numpy_helper

    k_out, channels, ksize, _ = weights.shape
    side = tile if tile else "height"
    out_side = tile - ksize + 1 if tile else "out_height"
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch or "batch", channels, side, side])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch or "batch", k_out, out_side, out_side])
    nodes = [helper.make_node("Conv", ["input", "W", "B"], ["conv" if softmax else "output"],
                              kernel_shape=[ksize, ksize])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["conv"], ["output"], axis=1))
    graph = helper.make_graph(nodes, "conv", [inp], [out], initializer=[
        numpy_helper.from_array(weights.astype(np.float32), "W"),
        numpy_helper.from_array(np.full(k_out, seed_bias, np.float32), "B"),
    ])
    return save_model(graph, metadata, path)


def two_head_model(path: str, first: np.ndarray, second: np.ndarray, metadata: dict | None = None) -> str:
    """Two softmaxed 1x1 convolutions of one input, as two outputs ("land", "water"): a two-head Deepness model
    whose heads differ, with free tile sizes. first, second: (K, C, 1, 1) weights."""
    from onnx import TensorProto, helper, numpy_helper

    channels = first.shape[1]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", channels, "height", "width"])
    outputs, nodes, weights = [], [], []
    for name, w in (("land", first), ("water", second)):
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", w.shape[0], "height",
                                                                               "width"]))
        nodes += [helper.make_node("Conv", ["input", f"W_{name}"], [f"conv_{name}"], kernel_shape=[1, 1]),
                  helper.make_node("Softmax", [f"conv_{name}"], [name], axis=1)]
        weights.append(numpy_helper.from_array(w.astype(np.float32), f"W_{name}"))
    graph = helper.make_graph(nodes, "two_heads", [inp], outputs, initializer=weights)
    return save_model(graph, metadata, path)


def batch_one_inside(path: str, weights: np.ndarray, metadata: dict | None = None) -> str:
    """A softmaxed 1x1 convolution whose graph reshapes to batch 1 while its input says any batch: the kind of
    export that fails on a batch of several tiles (a Deepness user's report)."""
    from onnx import TensorProto, helper, numpy_helper

    k_out, channels = weights.shape[:2]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", channels, "height", "width"])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", k_out, "height", "width"])
    nodes = [helper.make_node("Conv", ["input", "W"], ["conv"], kernel_shape=[1, 1]),
             helper.make_node("Reshape", ["conv", "one"], ["single"]),  # [1, K, H, W]: batch 1 only
             helper.make_node("Softmax", ["single"], ["output"], axis=1)]
    graph = helper.make_graph(nodes, "batch_one", [inp], [out], initializer=[
        numpy_helper.from_array(weights.astype(np.float32), "W"),
        numpy_helper.from_array(np.array([1, 0, 0, 0], np.int64), "one")])
    return save_model(graph, metadata, path)


def cell_detector(path: str, layout: str = "v5", stride: int = 16) -> str:
    """A tiny YOLO-format detector made of simple ops, for any tile size: one box per `stride`-px cell.

    Per cell (averaged input): objectness sigmoid(40 (R − G) − 3), classes "dark" sigmoid(20 (0.45 − mean)) and
    "bright" sigmoid(20 (mean − 0.45)) of the cell's mean value, a box centred on the cell, 24 + 8 R px wide and
    20 + 12 G px high (larger than a cell, so neighbours overlap and NMS has work). layout "v5": [N, boxes, 5 + 2];
    "v8": [N, 4 + 2, boxes] with the objectness folded into the class scores.
    """
    from onnx import TensorProto, helper, numpy_helper

    third = 20 / 3
    weights = np.array([[40, -40, 0], [8, 0, 0], [0, 12, 0], [-third] * 3, [third] * 3], np.float32)
    bias = np.array([-3, 24, 20, 9, -9], np.float32)
    scalars = [numpy_helper.from_array(np.array(v, np.int64), name)
               for name, v in (("zero", 0), ("one", 1), ("two", 2), ("three", 3))]
    inits = [numpy_helper.from_array(weights.reshape(5, 3, 1, 1), "W"), numpy_helper.from_array(bias, "B"), *scalars,
             numpy_helper.from_array(np.array([0.5], np.float32), "half"),
             numpy_helper.from_array(np.array([float(stride)], np.float32), "stride"),
             numpy_helper.from_array(np.array([1, 1, -1, 1], np.int64), "column_shape"),
             numpy_helper.from_array(np.array([1, 1, 1, -1], np.int64), "row_shape"),
             numpy_helper.from_array(np.array([0.0], np.float32), "nil"),
             numpy_helper.from_array(np.array([0, 7 if layout == "v5" else 6, -1], np.int64), "flat")]
    n = helper.make_node
    nodes = [
        n("AveragePool", ["input"], ["pooled"], kernel_shape=[stride, stride], strides=[stride, stride]),
        n("Conv", ["pooled", "W", "B"], ["features"], kernel_shape=[1, 1]),
        n("Split", ["features"], ["obj_logit", "w", "h", "c0_logit", "c1_logit"], axis=1),
        n("Sigmoid", ["obj_logit"], ["obj"]), n("Sigmoid", ["c0_logit"], ["c0"]), n("Sigmoid", ["c1_logit"], ["c1"]),
        n("Shape", ["pooled"], ["shape"]),
        n("Gather", ["shape", "two"], ["rows"]), n("Gather", ["shape", "three"], ["cols"]),
        n("Range", ["zero", "rows", "one"], ["row_ids"]), n("Range", ["zero", "cols", "one"], ["col_ids"]),
        n("Cast", ["row_ids"], ["row_f"], to=TensorProto.FLOAT),
        n("Cast", ["col_ids"], ["col_f"], to=TensorProto.FLOAT),
        n("Add", ["row_f", "half"], ["row_c"]), n("Add", ["col_f", "half"], ["col_c"]),
        n("Mul", ["row_c", "stride"], ["row_px"]), n("Mul", ["col_c", "stride"], ["col_px"]),
        n("Reshape", ["row_px", "column_shape"], ["row_grid"]), n("Reshape", ["col_px", "row_shape"], ["col_grid"]),
        n("Mul", ["obj", "nil"], ["zeros"]),
        n("Add", ["zeros", "col_grid"], ["cx"]), n("Add", ["zeros", "row_grid"], ["cy"]),
    ]
    if layout == "v5":
        nodes += [n("Concat", ["cx", "cy", "w", "h", "obj", "c0", "c1"], ["cells"], axis=1),
                  n("Reshape", ["cells", "flat"], ["flat_cells"]),
                  n("Transpose", ["flat_cells"], ["output"], perm=[0, 2, 1])]
        shape = ["batch", "boxes", 7]
    else:
        nodes += [n("Mul", ["c0", "obj"], ["s0"]), n("Mul", ["c1", "obj"], ["s1"]),
                  n("Concat", ["cx", "cy", "w", "h", "s0", "s1"], ["cells"], axis=1),
                  n("Reshape", ["cells", "flat"], ["output"])]
        shape = ["batch", 6, "boxes"]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)
    return save_model(helper.make_graph(nodes, "cells", [inp], [out], initializer=inits),
                      {"model_type": "Detector", "class_names": {"0": "dark", "1": "bright"}, "det_conf": 0.5,
                       "det_iou_thresh": 0.4, "patchwork:stride": stride,
                       "det_type": "YOLO_v5_or_v7_default" if layout == "v5" else "YOLO_ULTRALYTICS"}, path)


def sigmoid_map_model(path: str, weights: list[np.ndarray], tile: int | None = 64, metadata: dict | None = None,
                      keep_channel: bool = False) -> str:
    """One sigmoid map per weights (C,) as outputs [N, H, W] (Deepness's one-class form; [N, 1, H, W] with
    `keep_channel`), no metadata unless given: a 1x1 convolution of the input, then a sigmoid."""
    from onnx import TensorProto, helper, numpy_helper

    channels = len(weights[0])
    side = tile or "height"
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", channels, side, tile or "width"])
    nodes, outputs, initializers = [], [], [numpy_helper.from_array(np.array([1], np.int64), "axes")]
    for i, w in enumerate(weights):
        name = f"mask{i + 1}"
        initializers.append(numpy_helper.from_array(np.asarray(w, np.float32).reshape(1, channels, 1, 1), f"W{i}"))
        nodes += [helper.make_node("Conv", ["input", f"W{i}"], [f"conv{i}"], kernel_shape=[1, 1]),
                  helper.make_node("Sigmoid", [f"conv{i}"], [name if keep_channel else f"p{i}"])]
        if not keep_channel:
            nodes.append(helper.make_node("Squeeze", [f"p{i}", "axes"], [name]))
        shape = ["batch", 1, side, tile or "width"] if keep_channel else ["batch", side, tile or "width"]
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    graph = helper.make_graph(nodes, "sigmoid_maps", [inp], outputs, initializer=initializers)
    return save_model(graph, metadata, path)


def tile_dependent_model(path: str, weights: np.ndarray, softmax: bool, metadata: dict) -> str:
    """Each tile less its own mean, then a 3x3 convolution with zero padding (softmaxed for classes): what a pixel
    gets depends on the tile it is seen in, as with networks normalised per tile, so overlapping tiles disagree."""
    from onnx import TensorProto, helper, numpy_helper

    k = len(weights)
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4, "height", "width"])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", k, "height", "width"])
    nodes = [helper.make_node("ReduceMean", ["input"], ["mean"], axes=[2, 3], keepdims=1),
             helper.make_node("Sub", ["input", "mean"], ["centred"]),
             helper.make_node("Conv", ["centred", "W", "B"], ["conv" if softmax else "output"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["conv"], ["output"], axis=1))
    graph = helper.make_graph(nodes, "per_tile", [inp], [out], initializer=[
        numpy_helper.from_array(weights, "W"), numpy_helper.from_array(np.zeros(k, np.float32), "B")])
    return save_model(graph, metadata, path)
