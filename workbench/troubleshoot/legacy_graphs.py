"""Troubleshooting gallery, cases 12-16: the TF1-era questions, answered with today's TensorFlow.

Estimators and TF1 SavedModels or frozen graphs (what converts them now),
``optimize_for_inference`` (what it did and whether the converter still needs
it), training graph vs eval graph (``create_training_graph`` /
``create_eval_graph``), quant delay, and a model newer than its runtime
("Didn't find op for builtin opcode"). Same contract as ``gallery``: each
function builds or loads the models it needs, measures, and returns a
``CaseResult`` whose notes are made from the values measured in the same run.

The TF1 graphs are written with ``tf.compat.v1`` the way TF1 training scripts
wrote them (placeholders, variables, a session), from a trained Keras model's
weights, so they hold exactly that model.
"""

from __future__ import annotations

import collections
import contextlib
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core import artifacts, checks
from ..core.compare import paired
from ..core.data import Mnist
from ..core.evaluate import evaluate, evaluate_keras
from ..core.recipes import reference
from ..core.sources import load_source
from ..core.train import QatConfig, qat_steps, trained_lenet
from .casework import CaseResult, GalleryConfig, convert_case, count_ops, tf_version, measure, short_message
from .variants import trained_variant

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
FLOAT = reference().name  # the float conversion each case compares the others with


# --- TF1 graphs from a Keras model -----------------------------------------------------------------

def _tf1_graph(model: Any, batch: int | None):
    """``(graph, input, output)``: ``model`` rebuilt as a TF1 graph of ref variables holding its weights.

    Each variable comes with the ``read`` Identity node TF1 gave it, as in graphs of that time.
    """
    from ..core.keras_compat import tf

    v1 = tf.compat.v1
    values = {layer.name: [w.numpy() for w in layer.weights] for layer in model.layers}  # eagerly, before the graph
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, (batch, *model.input_shape[1:]), name=INPUT_NAME)
        h = x
        for layer in model.layers:
            kind = type(layer).__name__
            weights = values[layer.name]

            def var(value, name, scope=layer.name):
                return v1.Variable(value, name=f"{scope}/{name}", use_resource=False)

            if kind == "InputLayer":
                continue
            if kind == "Conv2D":
                h = tf.nn.conv2d(h, var(weights[0], "kernel"), strides=1, padding=layer.padding.upper(),
                                 name=f"{layer.name}/Conv2D")
                if layer.use_bias:
                    h = tf.nn.bias_add(h, var(weights[1], "bias"), name=f"{layer.name}/BiasAdd")
                h = _activation(tf, h, layer)
            elif kind == "BatchNormalization":
                gamma, beta, mean, variance = (var(w, n) for w, n in
                                               zip(weights, ("gamma", "beta", "moving_mean", "moving_variance")))
                h = v1.nn.fused_batch_norm(h, gamma, beta, mean, variance, epsilon=layer.epsilon,
                                           is_training=False, name=f"{layer.name}/FusedBatchNorm")[0]
            elif kind == "ReLU":
                h = tf.nn.relu(h, name=f"{layer.name}/Relu")
            elif kind == "MaxPooling2D":
                h = tf.nn.max_pool2d(h, layer.pool_size, layer.strides, layer.padding.upper(), name=layer.name)
            elif kind == "Flatten":
                h = tf.reshape(h, (-1, int(np.prod(h.shape[1:]))), name=layer.name)
            elif kind == "Dense":
                h = tf.nn.bias_add(tf.matmul(h, var(weights[0], "kernel")), var(weights[1], "bias"),
                                   name=f"{layer.name}/BiasAdd")
                h = _activation(tf, h, layer)
            else:
                raise ValueError(f"model layer {layer.name!r} is a {kind}; allowed: InputLayer, Conv2D, "
                                 "BatchNormalization, ReLU, MaxPooling2D, Flatten, Dense (a LeNet-like model)")
        output = tf.identity(h, name=OUTPUT_NAME)
    return graph, x, output


def _activation(tf, h, layer):
    name = layer.activation.__name__
    if name == "linear":
        return h
    if name in ("relu", "softmax"):
        return getattr(tf.nn, name)(h, name=f"{layer.name}/{name.capitalize()}")
    raise ValueError(f"model layer {layer.name!r} has activation {name!r}; allowed: linear, relu, softmax")


def export_tf1_saved_model(model: Any, path: str | Path) -> Path:
    """Write ``model`` as a TF1 SavedModel (session + ``saved_model.Builder``), as an Estimator exported one.

    The ``serving_default`` signature takes ``image`` (any batch) and returns ``probabilities``.
    """
    from ..core.keras_compat import tf

    v1 = tf.compat.v1
    graph, x, y = _tf1_graph(model, None)
    with artifacts.atomic_path(path) as tmp, v1.Session(graph=graph) as sess:
        sess.run(v1.global_variables_initializer())
        with graph.as_default(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            builder = v1.saved_model.Builder(str(tmp))
            signature = v1.saved_model.predict_signature_def({INPUT_NAME: x}, {OUTPUT_NAME: y})
            builder.add_meta_graph_and_variables(sess, [v1.saved_model.tag_constants.SERVING],
                                                 signature_def_map={"serving_default": signature})
            builder.save()
    return Path(path)


def export_tf1_frozen_graph(model: Any, path: str | Path) -> Path:
    """Write ``model`` as a TF1 frozen GraphDef (variables folded to constants, as ``freeze_graph`` did).

    Batch 1 input ``image``, output ``probabilities``.
    """
    from ..core.keras_compat import tf

    v1 = tf.compat.v1
    graph, _, _ = _tf1_graph(model, 1)
    with v1.Session(graph=graph) as sess, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sess.run(v1.global_variables_initializer())
        frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), [OUTPUT_NAME])
    artifacts.write_bytes_atomic(path, frozen.SerializeToString())
    return Path(path)


def graph_ops(path: str | Path) -> dict[str, int]:
    """How many nodes of each op type a frozen GraphDef has."""
    from ..core.keras_compat import tf

    graph = tf.compat.v1.GraphDef.FromString(Path(path).read_bytes())
    return dict(sorted(collections.Counter(node.op for node in graph.node).items()))


def optimize_frozen_graph(path: str | Path, target: str | Path) -> Path:
    """Run TF's ``optimize_for_inference`` on a frozen graph written by ``export_tf1_frozen_graph``."""
    from ..core.keras_compat import optimize_for_inference, tf

    graph = tf.compat.v1.GraphDef.FromString(Path(path).read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimize_for_inference(graph, [INPUT_NAME], [OUTPUT_NAME], tf.float32.as_datatype_enum)
    artifacts.write_bytes_atomic(target, optimized.SerializeToString())
    return Path(target)


@contextlib.contextmanager
def _workdir(folder: str | Path | None) -> Iterator[Path]:
    """``folder`` (created, kept), or a temporary folder removed when the case is done."""
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        yield Path(folder)
        return
    with tempfile.TemporaryDirectory(prefix="workbench-tf1-") as tmp:
        yield Path(tmp)


def _predictions_agree(a, b) -> float:
    return float(np.mean(np.asarray(a) == np.asarray(b)))


# --- 12. Estimators, TF1 SavedModels and frozen graphs ---------------------------------------------

def tf1_model(data: Mnist, cfg: GalleryConfig = GalleryConfig(), folder: str | Path | None = None) -> CaseResult:
    """An Estimator-era model today: a TF1 SavedModel and a frozen ``.pb`` through ``load_source`` and ``convert``."""
    from ..core.keras_compat import tf

    model = trained_lenet(data, cfg.train())
    images, labels = data.test_images[: cfg.eval_size], data.test_labels[: cfg.eval_size]
    keras_pred = evaluate_keras(model, images, labels).predictions
    rows = [{"variant": "Keras float", "accuracy": float(np.mean(keras_pred == labels)), "source": "Keras"}]
    with _workdir(folder) as work:
        saved = load_source(export_tf1_saved_model(model, work / "tf1_saved_model"))
        frozen = load_source(export_tf1_frozen_graph(model, work / "tf1_frozen.pb"),
                             input_arrays=INPUT_NAME, output_arrays=OUTPUT_NAME)
        for source_name, source in (("TF1 SavedModel", saved), ("TF1 frozen .pb", frozen)):
            for recipe, params in ((FLOAT, {}), ("int8-ptq", {}),
                                   ("legacy-uint8", {"default_ranges": (0.0, 6.0)})):
                converted = convert_case(source, recipe, data, cfg, **params)
                result = evaluate(converted, images, labels)
                rows.append(measure(f"{source_name} -> {recipe}", converted, data, cfg, source=source_name,
                                    recipe=recipe,
                                    agrees_with_keras=_predictions_agree(result.predictions, keras_pred)))
    has_estimator = hasattr(tf, "estimator") or hasattr(tf.compat.v1, "estimator")
    float_rows = [r for r in rows if r.get("recipe") == FLOAT]
    return CaseResult(12, "Estimator, TF1 SavedModel, frozen graph", f"tf.estimator present: {has_estimator}",
                      None, tuple(rows), (
        f"TensorFlow {tf_version()} has {'a' if has_estimator else 'no'} tf.estimator: an Estimator cannot be "
        "built or exported here; what it exported (a TF1 SavedModel with a serving signature) and what "
        "freeze_graph wrote (a frozen .pb) still convert.",
        f"SavedModel: load_source(folder) (signature 'serving_default'); frozen .pb: load_source(path, "
        f"input_arrays='{INPUT_NAME}', output_arrays='{OUTPUT_NAME}'). Float32 from both agrees with the Keras "
        f"model on {min(r['agrees_with_keras'] for r in float_rows):.2%} of {len(labels):,} test images or more.",))


# --- 13. optimize_for_inference --------------------------------------------------------------------

def optimize_for_inference(data: Mnist, cfg: GalleryConfig = GalleryConfig(),
                           folder: str | Path | None = None) -> CaseResult:
    """A TF1 frozen graph with BatchNorm, converted with and without ``optimize_for_inference``.

    The old tool stripped nodes inference does not need (the variables' ``read`` Identity
    nodes), folded BatchNorm into the convolution weights (new constants) and removed unused
    nodes; the rows count the graph's nodes and the converted models' ops and accuracy both ways.
    """
    model = trained_variant("lenet-bn", data, cfg.train())
    rows, converted, graphs = [], {}, {}
    with _workdir(folder) as work:
        plain_path = export_tf1_frozen_graph(model, work / "bn_frozen.pb")
        optimized_path = optimize_frozen_graph(plain_path, work / "bn_optimized.pb")
        for name, path in (("frozen", plain_path), ("optimize_for_inference", optimized_path)):
            source = load_source(path, input_arrays=INPUT_NAME, output_arrays=OUTPUT_NAME)
            ops = graphs[name] = graph_ops(path)
            for recipe in (FLOAT, "int8-ptq"):
                c = converted[(name, recipe)] = convert_case(source, recipe, data, cfg)
                rows.append(measure(f"{name} -> {recipe}", c, data, cfg, graph=name, recipe=recipe,
                                    graph_nodes=sum(ops.values()),
                                    graph_batchnorm=sum(v for k, v in ops.items() if k.startswith("FusedBatchNorm")),
                                    graph_identity=ops.get("Identity", 0), graph_const=ops.get("Const", 0),
                                    tflite_ops=len(c.ops), mul_add_ops=count_ops(c, "MUL", "ADD"),
                                    op_list=" ".join(c.ops)))
    before, after = graphs["frozen"], graphs["optimize_for_inference"]
    changed = ", ".join(f"{op} {before.get(op, 0)} -> {after.get(op, 0)}" for op in sorted(set(before) | set(after))
                        if before.get(op, 0) != after.get(op, 0)) or "nothing"
    same = {recipe: converted[("frozen", recipe)].ops == converted[("optimize_for_inference", recipe)].ops
            for recipe in (FLOAT, "int8-ptq")}
    by = {(r["graph"], r["recipe"]): r for r in rows}
    plain_acc = {recipe: by[("frozen", recipe)]["accuracy"] for recipe in same}
    optimized_acc = {recipe: by[("optimize_for_inference", recipe)]["accuracy"] for recipe in same}
    return CaseResult(13, "optimize_for_inference", f"graph nodes {sum(before.values())} -> {sum(after.values())}",
                      None, tuple(rows), (
        f"optimize_for_inference changed the graph's nodes: {changed}.",
        "The converter's op lists with and without it: "
        + "; ".join(f"{recipe} {'identical' if s else 'different'}" for recipe, s in same.items())
        + f" ({by[('frozen', FLOAT)]['mul_add_ops']} MUL/ADD ops without it: the converter folds the BatchNorm "
          "into the convolutions and drops the Identity nodes itself)." if all(same.values()) and
        by[("frozen", FLOAT)]["mul_add_ops"] == 0 else
        "The converter's op lists differ with and without it: "
        + "; ".join(f"{recipe}: {' '.join(converted[('frozen', recipe)].ops)} vs "
                    f"{' '.join(converted[('optimize_for_inference', recipe)].ops)}" for recipe in same) + ".",
        "Accuracy without -> with it: " + "; ".join(
            f"{recipe} {plain_acc[recipe]:.2%} -> {optimized_acc[recipe]:.2%}"
            for recipe in (FLOAT, "int8-ptq")) + "."))


# --- 14. training graph vs eval graph --------------------------------------------------------------

def training_vs_eval_graph(data: Mnist, cfg: GalleryConfig = GalleryConfig(), batch_one_images: int = 300,
                           folder: str | Path | None = None) -> CaseResult:
    """One QAT model (Conv->BN->ReLU) in training and in inference behaviour, and each one frozen for export.

    ``batch_one_images``: test images run one at a time through the training behaviour (BatchNorm then
    normalizes each image by its own statistics).
    """
    batch_one_images = checks.number("batch_one_images", batch_one_images, low=1, high=cfg.eval_size, integer=True)
    model = trained_variant("lenet-bn", data, cfg.train(), QatConfig("int8"))
    images, labels = data.test_images[: cfg.eval_size], data.test_labels[: cfg.eval_size]
    x = cfg.train().spec.normalize(images)
    saved = [v.numpy().copy() for v in model.variables]
    names = [v.name for v in model.variables]

    def changed_by(training: bool) -> list[str]:
        model(x[:128], training=training)
        moved = [n for n, v, old in zip(names, model.variables, saved) if not np.array_equal(v.numpy(), old)]
        for v, old in zip(model.variables, saved):
            v.assign(old)
        return moved

    moved_eval, moved_train = changed_by(False), changed_by(True)
    range_vars = [n for n in names if n.split("/")[-1].split(":")[0].endswith(("_min", "_max"))]
    bn_vars = [n for n in names if "moving_" in n]
    n = batch_one_images
    eval_pred = np.asarray(model(x[:n], training=False)).argmax(1)
    train_one = np.concatenate([np.asarray(model(x[i:i + 1], training=True)) for i in range(n)]).argmax(1)
    for v, old in zip(model.variables, saved):
        v.assign(old)  # the training behaviour moved the ranges and BN statistics: put them back
    rows = [{"variant": "Keras, inference behaviour (training=False)", "images": n,
             "accuracy": float(np.mean(eval_pred == labels[:n])),
             "range_variables_moved": sum(m in range_vars for m in moved_eval),
             "bn_statistics_moved": sum(m in bn_vars for m in moved_eval)},
            {"variant": "Keras, training behaviour (training=True), one image per call", "images": n,
             "accuracy": float(np.mean(train_one == labels[:n])),
             "range_variables_moved": sum(m in range_vars for m in moved_train),
             "bn_statistics_moved": sum(m in bn_vars for m in moved_train)}]
    test = paired(eval_pred, train_one, labels[:n])
    export_error = None
    with _workdir(folder) as work:
        exports = _export_both_behaviours(model, data, cfg, work)
    for row in exports:
        if not row["exported"]:
            export_error = row["error"]
        rows.append(row)
    train_row, eval_row = rows[1], rows[0]
    exported = next((r for r in rows if r.get("exported")), None)
    return CaseResult(14, "training graph vs eval graph", export_error or "the training graph froze", None,
                      tuple(rows), (
        f"One training-behaviour call on 128 images moved {train_row['range_variables_moved']} of "
        f"{len(range_vars)} fake-quant range variables and {train_row['bn_statistics_moved']} of {len(bn_vars)} "
        f"BatchNorm statistics; the inference behaviour moved {eval_row['range_variables_moved']} and "
        f"{eval_row['bn_statistics_moved']}.",
        f"Run one image at a time, the training behaviour normalizes each image by its own statistics: "
        f"{train_row['accuracy']:.2%} vs {eval_row['accuracy']:.2%} on the same {n} images ({test.summary()}).",
        ("Freezing the eval graph worked: "
         f"{exported['graph_fused_batchnorm']} FusedBatchNorm and {exported['graph_fake_quant']} FakeQuant nodes "
         f"became a model with {exported['mul_add_ops']} MUL/ADD ops (BatchNorm folded into the convolutions), "
         f"{exported['accuracy']:.2%}." if exported else "The eval graph did not freeze either.")
        + (f" Freezing the training graph failed: it assigns to its own ranges ({export_error})."
           if export_error else " The training graph froze too."),))


def _export_both_behaviours(model: Any, data: Mnist, cfg: GalleryConfig, work: Path) -> list[dict[str, Any]]:
    """The eval and the training behaviour of a QAT model, each frozen (as TF1 exported) and converted with qat-int8."""
    from ..core.keras_compat import freeze_function, tf
    from ..core.sources import FrozenGraph

    rows = []
    for training in (False, True):
        spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)
        function = tf.function(lambda t: model(t, training=training)).get_concrete_function(spec)
        label = "training graph" if training else "eval graph"
        try:
            frozen = freeze_function(function)
        except Exception as err:  # noqa: BLE001 - TF's refusal is the measured answer
            error = f"{type(err).__name__}: {short_message(str(err), 300)}"
            rows.append({"variant": f"{label} frozen -> qat-int8", "exported": False, "error": error})
            continue
        path = work / f"qat_{'training' if training else 'eval'}.pb"
        graph = frozen.graph.as_graph_def()
        artifacts.write_bytes_atomic(path, graph.SerializeToString())
        ops = collections.Counter(node.op for node in graph.node)
        source = FrozenGraph(path, tuple(t.name.split(":")[0] for t in frozen.inputs),
                             tuple(t.name.split(":")[0] for t in frozen.outputs), ((1, *model.input_shape[1:]),))
        converted = convert_case(source, "qat-int8", data, cfg)
        rows.append(measure(f"{label} frozen -> qat-int8", converted, data, cfg, exported=True,
                            graph_fused_batchnorm=ops.get("FusedBatchNormV3", 0) + ops.get("FusedBatchNorm", 0),
                            graph_fake_quant=sum(v for k, v in ops.items() if k.startswith("FakeQuant")),
                            mul_add_ops=count_ops(converted, "MUL", "ADD")))
    return rows


# --- 15. quant delay -------------------------------------------------------------------------------

def quant_delay(data: Mnist, cfg: GalleryConfig = GalleryConfig(), delay_steps: int | None = None,
                scheme: str = "int8") -> CaseResult:
    """QAT with fake-quant from the first step vs after ``delay_steps`` float steps, at the same budget.

    ``delay_steps=None``: half of the QAT budget's steps.
    """
    config = cfg.train()
    total = qat_steps(data, config, QatConfig(scheme))
    delay = total // 2 if delay_steps is None else checks.number("delay_steps", delay_steps, low=1, high=total - 1,
                                                                 integer=True)
    recipe = "qat-int8" if scheme == "int8" else "legacy-uint8"
    images, labels = data.test_images[: cfg.eval_size], data.test_labels[: cfg.eval_size]
    rows, preds = [], {}
    for steps in (0, delay):
        qat = QatConfig(scheme, delay_steps=steps)
        model = trained_lenet(data, config, qat)
        converted = convert_case(model, recipe, data, cfg)
        preds[steps] = evaluate(converted, images, labels).predictions
        rows.append(measure(f"fake-quant from step {steps + 1} of {total} -> {recipe}", converted, data, cfg,
                            delay_steps=steps, float_steps=steps, fake_quant_steps=total - steps,
                            epochs=cfg.epochs + qat.epochs))
    test = paired(preds[0], preds[delay], labels)
    return CaseResult(15, "quant delay", f"delay_steps={delay} of {total}", None, tuple(rows), (
        f"Both runs start from the same float model and train {total} QAT-budget steps; the delayed one runs "
        f"the first {delay} in float. Delay {delay} against delay 0 on {len(labels):,} test images: "
        f"{test.summary()}.",))


# --- 16. a model newer than the runtime ------------------------------------------------------------

def newer_op_version(data: Mnist, cfg: GalleryConfig = GalleryConfig(), op: str = "CONV_2D",
                     version: int = 99) -> CaseResult:
    """"Didn't find op for builtin opcode": the float LeNet with one op claiming a version the runtime lacks."""
    from ..core import litert
    from ..core.diagnose import QuantizationError

    model = trained_lenet(data, cfg.train())
    converted = convert_case(model, FLOAT, data, cfg)
    used = next(v for name, v in litert.op_versions(converted) if name == op) if op in converted.ops else None
    newer = litert.with_op_version(converted, op, version)
    rows = [measure(f"{op} version {used} (as converted)", converted, data, cfg, op_version=used, loads=True)]
    try:
        litert.read_model(newer)
        error = None
        rows.append({"variant": f"{op} version {version}", "op_version": version, "loads": True})
    except QuantizationError as err:
        error = err
        rows.append({"variant": f"{op} version {version}", "op_version": version, "loads": False,
                     "explained_as": err.key})
    failure = short_message(error.diagnosis.original) if error else f"the runtime loaded {op} version {version}"
    return CaseResult(16, "a model newer than the runtime", failure, error.diagnosis if error else None, tuple(rows), (
        f"The same bytes with only {op}'s version changed from {used} to {version}: the runtime "
        + (f"refused to load them ({error.key})." if error else "loaded them.")
        + " A converter newer than the runtime does exactly this when it writes an op version the runtime "
          "predates.",))


LEGACY_CASES = ("tf1_model", "optimize_for_inference", "training_vs_eval_graph", "quant_delay", "newer_op_version")
