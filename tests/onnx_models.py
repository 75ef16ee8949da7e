"""Small ONNX models built in the tests (with the `onnx` package), and the full-scene reference for fixed-size ones."""
from __future__ import annotations

import json

import numpy as np


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
    import onnx
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(model, path)
    return path


def two_head_model(path: str, first: np.ndarray, second: np.ndarray, metadata: dict | None = None) -> str:
    """Two softmaxed 1x1 convolutions of one input, as two outputs ("land", "water"): a two-head Deepness model
    whose heads differ, with free tile sizes. first, second: (K, C, 1, 1) weights."""
    import onnx
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(model, path)
    return path


def batch_one_inside(path: str, weights: np.ndarray, metadata: dict | None = None) -> str:
    """A softmaxed 1x1 convolution whose graph reshapes to batch 1 while its input says any batch: the kind of
    export that fails on a batch of several tiles (a Deepness user's report)."""
    import onnx
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(model, path)
    return path
