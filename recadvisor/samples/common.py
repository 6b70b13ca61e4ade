"""Building blocks shared by the sample models: sizes, weights, sparse training, data files.

Everything TensorFlow is imported lazily (:func:`recadvisor.tfimport.import_tf`). Weights are
initialized from numpy generators, and training visits batches in a numpy-drawn order, so a
build is a pure function of its seed.

Training is sparse-friendly: embedding tables are read with ``tf.gather`` so their gradients are
``IndexedSlices``, and :class:`SparseAdagrad` updates only the rows a batch touched. A 100k-row
table costs no more per step than a 1k-row one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recadvisor.model.spec import TensorInfo
from recadvisor.tfimport import import_tf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleSize:
    """Table sizes, widths and training schedule of one build size (``tiny`` or ``full``).

    Attributes:
        name: ``tiny`` or ``full``.
        user_buckets: hash buckets of ``user_id`` in DSSM and ESMM (the oversized table).
        din_user_buckets: hash buckets of ``user_id`` in DIN.
        item_buckets: hash buckets of item ids (target and history).
        age_buckets: hash buckets of ``age`` after ``AsString``.
        city_buckets: hash buckets of ``city``.
        gender_buckets: hash buckets of ``gender``.
        category_buckets: hash buckets of DIN's ``cate_id`` / ``hist_cate_id``.
        id_dim: embedding width of user and item ids.
        small_dim: embedding width of low-cardinality features.
        hidden_units: width of the first MLP layer (the next is half of it).
        epochs: passes over the training split.
        batch_size: rows per training step.
        learning_rate: Adagrad learning rate.
    """

    name: str
    user_buckets: int
    din_user_buckets: int
    item_buckets: int
    age_buckets: int
    city_buckets: int
    gender_buckets: int
    category_buckets: int
    id_dim: int
    small_dim: int
    hidden_units: int
    epochs: int
    batch_size: int
    learning_rate: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


SIZES: dict[str, SampleSize] = {
    "full": SampleSize(
        name="full",
        user_buckets=100_000,
        din_user_buckets=5_000,
        item_buckets=10_000,
        age_buckets=1_000,
        city_buckets=64,
        gender_buckets=8,
        category_buckets=100,
        id_dim=32,
        small_dim=16,
        hidden_units=64,
        epochs=8,
        batch_size=256,
        learning_rate=0.1,
    ),
    "tiny": SampleSize(
        name="tiny",
        user_buckets=2_000,
        din_user_buckets=500,
        item_buckets=1_000,
        age_buckets=100,
        city_buckets=64,
        gender_buckets=8,
        category_buckets=100,
        id_dim=8,
        small_dim=4,
        hidden_units=32,
        epochs=10,
        batch_size=128,
        learning_rate=0.1,
    ),
}

HELD_OUT_FRACTION = 0.2
VOCABULARY_SIZE = 25  # category vocabulary: the most frequent ones; the rest share an OOV index


def held_out_start(rows: int) -> int:
    """First row of the held-out split: the last :data:`HELD_OUT_FRACTION` of the rows."""
    return rows - max(1, int(round(rows * HELD_OUT_FRACTION)))


def top_vocabulary(values: np.ndarray, size: int = VOCABULARY_SIZE) -> list[str]:
    """The ``size`` most frequent values, ties broken by value (deterministic).

    Args:
        values: 1-D array of strings.
        size: vocabulary size.

    Returns:
        The vocabulary, most frequent first.
    """
    uniques, counts = np.unique(values.astype(str), return_counts=True)
    order = sorted(range(len(uniques)), key=lambda i: (-counts[i], uniques[i]))
    return [str(uniques[i]) for i in order[:size]]


class DenseLayer:
    """``activation(x @ kernel + bias)`` with tracked variables."""

    def __init__(self, kernel: Any, bias: Any, activation: str | None) -> None:
        self.kernel = kernel
        self.bias = bias
        self.activation = activation

    def __call__(self, x: Any) -> Any:
        """Apply the layer to ``[B, n_in]`` or ``[B, L, n_in]`` inputs (static ``L``)."""
        tf = import_tf()
        if x.shape.rank == 2:
            y = tf.matmul(x, self.kernel) + self.bias
        else:  # [B, L, n_in] with a static L: one MatMul between two constant-shape Reshapes
            n_in, n_out = self.kernel.shape
            flat = tf.matmul(tf.reshape(x, [-1, n_in]), self.kernel) + self.bias
            y = tf.reshape(flat, [-1, *x.shape[1:-1], n_out])
        if self.activation == "relu":
            return tf.nn.relu(y)
        return y


class ModelParams:
    """Creates named weights from numpy and keeps them tracked on one ``tf.Module``.

    Every variable and lookup table is set as an attribute of :attr:`module`, which is what
    ``tf.saved_model.save`` writes; names become the checkpoint keys.
    """

    def __init__(self, name: str, rng: np.random.Generator) -> None:
        tf = import_tf()
        self.module = tf.Module(name=name)
        self.rng = rng

    def _track(self, name: str, value: Any) -> Any:
        if hasattr(self.module, name):
            raise ValueError(f"weight '{name}' defined twice")
        setattr(self.module, name, value)
        return value

    def embedding(self, name: str, rows: int, dim: int, scale: float = 0.05) -> Any:
        """A ``[rows, dim]`` embedding table, N(0, scale) initialized."""
        tf = import_tf()
        value = self.rng.normal(scale=scale, size=(rows, dim)).astype(np.float32)
        return self._track(name, tf.Variable(value, name=name))

    def scalar(self, name: str, value: float) -> Any:
        """A trainable scalar."""
        tf = import_tf()
        return self._track(name, tf.Variable(np.float32(value), name=name))

    def dense(
        self, name: str, n_in: int, n_out: int, activation: str | None = "relu"
    ) -> DenseLayer:
        """A Glorot-uniform initialized dense layer."""
        tf = import_tf()
        limit = np.sqrt(6.0 / (n_in + n_out))
        kernel = self.rng.uniform(-limit, limit, size=(n_in, n_out)).astype(np.float32)
        k = self._track(f"{name}_kernel", tf.Variable(kernel, name=f"{name}_kernel"))
        b = self._track(
            f"{name}_bias", tf.Variable(np.zeros(n_out, np.float32), name=f"{name}_bias")
        )
        return DenseLayer(k, b, activation)

    def mlp(
        self, name: str, n_in: int, units: list[int], last_activation: str | None
    ) -> list[DenseLayer]:
        """Dense layers of the given widths; ReLU between them, ``last_activation`` at the end."""
        layers = []
        for i, n_out in enumerate(units):
            activation = "relu" if i < len(units) - 1 else last_activation
            layers.append(self.dense(f"{name}_{i}", n_in, n_out, activation))
            n_in = n_out
        return layers

    def vocabulary_table(self, name: str, vocabulary: list[str]) -> Any:
        """A string -> int64 ``StaticHashTable``; unknown strings map to ``len(vocabulary)``."""
        tf = import_tf()
        init = tf.lookup.KeyValueTensorInitializer(
            tf.constant(vocabulary, dtype=tf.string),
            tf.constant(np.arange(len(vocabulary), dtype=np.int64)),
        )
        table = tf.lookup.StaticHashTable(init, default_value=np.int64(len(vocabulary)), name=name)
        return self._track(name, table)


def apply_mlp(layers: list[DenseLayer], x: Any) -> Any:
    """Run ``x`` through ``layers`` in order."""
    for layer in layers:
        x = layer(x)
    return x


def hash_lookup(table: Any, values: Any, num_buckets: int) -> Any:
    """Embed string ``values`` (any shape) via ``StringToHashBucketFast`` and a gather."""
    tf = import_tf()
    return tf.gather(table, tf.strings.to_hash_bucket_fast(values, num_buckets))


def masked_mean(embedded: Any, mask: Any) -> Any:
    """Mean of ``[B, L, D]`` over the positions where ``mask`` ``[B, L]`` is true."""
    tf = import_tf()
    weights = tf.cast(mask, tf.float32)
    total = tf.reduce_sum(embedded * weights[:, :, None], axis=1)
    count = tf.maximum(tf.reduce_sum(weights, axis=1, keepdims=True), 1.0)
    return total / count


def binary_cross_entropy(labels: Any, probabilities: Any) -> Any:
    """Mean log loss of probabilities (for products of sigmoids such as ESMM's ctcvr)."""
    tf = import_tf()
    p = tf.clip_by_value(probabilities, 1e-7, 1.0 - 1e-7)
    return -tf.reduce_mean(labels * tf.math.log(p) + (1.0 - labels) * tf.math.log(1.0 - p))


class SparseAdagrad:
    """Adagrad that updates only the touched rows of ``IndexedSlices`` gradients.

    Duplicate indices are summed first (``unique`` + ``unsorted_segment_sum``), as TF's own
    optimizers do. Accumulators are plain variables outside the model's module, so they are not
    saved with the model.
    """

    def __init__(self, variables: list[Any], learning_rate: float, initial: float = 0.1) -> None:
        tf = import_tf()
        self.learning_rate = learning_rate
        self.variables = variables
        self.accumulators = [
            tf.Variable(np.full(v.shape, initial, np.float32), trainable=False) for v in variables
        ]

    def apply(self, gradients: list[Any]) -> None:
        """Apply one step (call inside a ``tf.function``)."""
        tf = import_tf()
        lr = self.learning_rate
        for grad, var, acc in zip(gradients, self.variables, self.accumulators, strict=True):
            if grad is None:
                continue
            if isinstance(grad, tf.IndexedSlices):
                rows, position = tf.unique(grad.indices)
                values = tf.math.unsorted_segment_sum(grad.values, position, tf.shape(rows)[0])
                acc.scatter_add(tf.IndexedSlices(values * values, rows))
                scaled = lr * values * tf.math.rsqrt(tf.gather(acc, rows))
                var.scatter_sub(tf.IndexedSlices(scaled, rows))
            else:
                acc.assign_add(grad * grad)
                var.assign_sub(lr * grad * tf.math.rsqrt(acc))


LossFn = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]


def train(
    loss_fn: LossFn,
    variables: list[Any],
    features: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    size: SampleSize,
    rng: np.random.Generator,
) -> float:
    """Train with mini-batch sparse Adagrad.

    Args:
        loss_fn: ``(features, labels) -> scalar loss`` on batch tensors.
        variables: the trainable variables.
        features: model inputs of the training rows, keyed by input key.
        labels: float labels of the training rows, keyed by label name.
        size: the build size (epochs, batch size, learning rate).
        rng: orders the batches.

    Returns:
        Wall-clock seconds spent training.
    """
    tf = import_tf()
    start = time.perf_counter()
    feature_tensors = {k: tf.constant(v) for k, v in features.items()}
    label_tensors = {k: tf.constant(v.astype(np.float32)) for k, v in labels.items()}
    optimizer = SparseAdagrad(variables, size.learning_rate)

    def step(index: Any) -> Any:
        batch = {k: tf.gather(v, index) for k, v in feature_tensors.items()}
        batch_labels = {k: tf.gather(v, index) for k, v in label_tensors.items()}
        with tf.GradientTape() as tape:
            loss = loss_fn(batch, batch_labels)
        optimizer.apply(tape.gradient(loss, variables))
        return loss

    train_step = tf.function(
        step, input_signature=[tf.TensorSpec([None], tf.int64)], autograph=False
    )
    n = len(next(iter(labels.values())))
    for epoch in range(size.epochs):
        order = rng.permutation(n).astype(np.int64)
        losses = [
            float(train_step(tf.constant(order[i : i + size.batch_size])))
            for i in range(0, n, size.batch_size)
        ]
        log.debug("epoch %d: mean loss %.4f", epoch, float(np.mean(losses)))
    return time.perf_counter() - start


def tensor_specs(inputs: Mapping[str, TensorInfo]) -> dict[str, Any]:
    """Named ``tf.TensorSpec`` per signature input."""
    tf = import_tf()
    return {
        k: tf.TensorSpec(
            list(v.shape) if v.shape is not None else None, tf.as_dtype(v.dtype), name=k
        )
        for k, v in inputs.items()
    }


def serving_function(
    serve: Callable[[Mapping[str, Any]], dict[str, Any]], inputs: Mapping[str, TensorInfo]
) -> Any:
    """Trace ``serve`` into a concrete function taking keyword tensors, one per input."""
    tf = import_tf()

    def serving_default(**features: Any) -> dict[str, Any]:
        return serve(features)

    return tf.function(serving_default, autograph=False).get_concrete_function(
        **tensor_specs(inputs)
    )


def write_parquet(
    path: str | Path,
    columns: Mapping[str, np.ndarray],
) -> None:
    """Write model inputs and labels as Parquet: 2-D ``[N, L>1]`` arrays become list columns.

    ``[N]`` and ``[N, 1]`` arrays become scalar columns; strings are stored as UTF-8.

    Args:
        path: the ``.parquet`` file.
        columns: column name -> numpy array, in column order.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for name, values in columns.items():
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim == 1:
            arrays[name] = pa.array(
                values.tolist() if values.dtype == object else values,
                type=pa.string() if values.dtype == object else None,
            )
            continue
        n, length = values.shape
        offsets = pa.array(np.arange(0, (n + 1) * length, length, dtype=np.int32))
        flat = values.reshape(-1)
        flat_array = (
            pa.array(flat.tolist(), type=pa.string()) if flat.dtype == object else pa.array(flat)
        )
        arrays[name] = pa.ListArray.from_arrays(offsets, flat_array)
    pq.write_table(pa.table(arrays), str(path), compression="zstd")


def frame_to_feeds(frame: Any, inputs: Mapping[str, TensorInfo]) -> dict[str, np.ndarray]:
    """Turn a sample data frame (as read from ``sample.parquet``) into model feeds.

    Args:
        frame: a pandas DataFrame with one column per input key.
        inputs: the signature inputs.

    Returns:
        Input key -> numpy array with the input's rank (strings as object arrays of ``str``).
    """
    feeds = {}
    for key, info in inputs.items():
        column = frame[key]
        rank = info.rank or 1
        if rank == 2 and (info.shape[1] or 0) != 1:
            values = np.stack([np.asarray(v) for v in column.to_numpy()])
        else:
            values = column.to_numpy()
            if rank == 2:
                values = values.reshape(-1, 1)
        if info.dtype == "string":
            values = values.astype(object)
        else:
            values = values.astype(np.dtype(info.dtype))
        feeds[key] = values
    return feeds


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """``sklearn.metrics.roc_auc_score``, or NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


class SampleModel:
    """What the build needs from a sample model (each sample subclasses this).

    Attributes:
        params: the :class:`ModelParams` whose ``module`` is saved.
    """

    params: ModelParams

    def serve(self, features: Mapping[str, Any]) -> dict[str, Any]:
        """Signature outputs (probabilities, shape ``[N]``) from input tensors."""
        raise NotImplementedError

    def loss(self, features: Mapping[str, Any], labels: Mapping[str, Any]) -> Any:
        """Scalar training loss on a batch."""
        raise NotImplementedError

    @property
    def module(self) -> Any:
        """The ``tf.Module`` that holds every weight and table."""
        return self.params.module

    @property
    def trainable_variables(self) -> list[Any]:
        """Every trainable variable, in a stable order."""
        return list(self.module.trainable_variables)


class ClickModel(SampleModel):
    """A sample with one click logit: ``serve`` gives ``{"score": sigmoid(logit)}``."""

    def logit(self, features: Mapping[str, Any]) -> Any:
        """The click logit, shape ``[N]``."""
        raise NotImplementedError

    def serve(self, features: Mapping[str, Any]) -> dict[str, Any]:
        """``{"score": [N]}`` click probabilities."""
        tf = import_tf()
        return {"score": tf.sigmoid(self.logit(features))}

    def loss(self, features: Mapping[str, Any], labels: Mapping[str, Any]) -> Any:
        """Mean log loss against ``label``."""
        tf = import_tf()
        return tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels["label"], self.logit(features))
        )


@dataclass(frozen=True)
class AucTarget:
    """How to score one output: against ``label``, on the rows where ``only_where`` is 1."""

    label: str
    only_where: str | None = None


@dataclass(frozen=True)
class SampleDefinition:
    """One sample model: its signature, data columns, labels, model and planted flaws.

    Attributes:
        name: ``dssm``, ``esmm`` or ``din``.
        inputs: the serving signature inputs.
        outputs: the serving signature output keys.
        labels: label column names (written after the inputs).
        make_columns: interactions -> input columns then label columns.
        make_model: ``(size, training columns, rng) -> SampleModel``.
        planted_flaws: ``(size, all columns) -> flaw dicts`` for ``flaws.json``.
        auc_targets: output key -> how its held-out AUC is computed.
    """

    name: str
    inputs: dict[str, TensorInfo]
    outputs: tuple[str, ...]
    labels: tuple[str, ...]
    make_columns: Callable[[Any], dict[str, np.ndarray]]
    make_model: Callable[[SampleSize, Mapping[str, np.ndarray], np.random.Generator], SampleModel]
    planted_flaws: Callable[[SampleSize, Mapping[str, np.ndarray]], list[dict[str, Any]]]
    auc_targets: dict[str, AucTarget]


def flaw(kind: str, features: list[str], detail: str) -> dict[str, Any]:
    """One ``flaws.json`` entry."""
    return {"kind": kind, "features": list(features), "detail": detail}


def age_as_string_flaw(
    size: SampleSize, columns: Mapping[str, np.ndarray], shape: str = ""
) -> dict[str, Any]:
    """The ``numeric_as_string`` flaw every sample plants on ``age`` (AsString + hash)."""
    ages = columns["age"]
    kind = f"int64 age {shape} " if shape else "int64 age "
    return flaw(
        "numeric_as_string",
        ["age"],
        f"{kind}is formatted with AsString and hashed into {size.age_buckets} "
        f"buckets; the data holds {distinct(ages)} distinct ages ({ages.min()}..{ages.max()})",
    )


def unused_input_flaw(name: str) -> dict[str, Any]:
    """An ``unused_input`` flaw: declared in the signature, never read."""
    return flaw(
        "unused_input",
        [name],
        f"{name} is declared in the serving signature but the graph never reads it",
    )


def oversized_user_table_flaw(
    size: SampleSize, columns: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """The ``large_embedding`` flaw on ``user_id``: far more rows than users in the data."""
    users = distinct(columns["user_id"])
    return flaw(
        "large_embedding",
        ["user_id"],
        f"user_id hashes into {size.user_buckets} rows x {size.id_dim} dims but the data "
        f"holds {users} distinct users (<= {100.0 * users / size.user_buckets:.1f}% of "
        "rows can ever be hit)",
    )


def distinct(values: np.ndarray) -> int:
    """Number of distinct non-padding values (any shape)."""
    flat = values.reshape(-1)
    if flat.dtype == object:
        return len({v for v in flat.tolist() if v != ""})
    return len(np.unique(flat))
