"""The zoo: which models, built by which library, covering which graph patterns.

No TensorFlow here: ``benchmarks/zoo.py`` reads this list, and each model is built in its own
subprocess (``python -m benchmarks.zoo.build NAME OUT``) because the libraries have import side
effects and several need Keras 2 as ``tf.keras`` (``TF_USE_LEGACY_KERAS=1``, which must be set
before TensorFlow is first imported).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The graph patterns the zoo must cover together (issue 12), with what each means.
PATTERNS: dict[str, str] = {
    "string_mask": "padding mask computed on the raw string (NotEqual(x, pad)) beside the hash",
    "sparse_fc": "feature-column sparse path (to_sparse_input: Where/GatherNd, then hash/lookup)",
    "multi_valued": "multi-valued string feature [N, K]",
    "sequence": "sequence (history) string feature pooled or attended over",
    "int_lookup": "int64 -> int64 lookup table (IntegerLookup, vocabulary of integers)",
    "strong_hash": "salted/keyed hashing (StringToHashBucketStrong) or Fingerprint-based hashing",
    "crossed": "crossed features (SparseCross / HashedCrossing)",
    "multi_task": "several heads (one output per task)",
    "rank1": "rank-1 inputs ([N])",
    "string_output": "string outputs (retrieval top-K ids)",
    "string_hash": "string hashing (StringToHashBucketFast)",
    "vocab": "string vocabulary lookup (StringLookup / vocabulary list / vocabulary file)",
    "numeric_as_string": "numbers hashed through their string form (AsString + hash)",
    "bucketize": "numeric bucketization (Bucketize / Discretization)",
    "tf1": "TF1 Session export (tf.compat.v1 SavedModelBuilder, tables initialized by main op)",
}


@dataclass(frozen=True)
class ZooModel:
    """One zoo model.

    Attributes:
        name: folder name under the zoo's models folder.
        library: the library or API that builds it.
        package: the PyPI distribution whose version is recorded (``None``: TensorFlow itself).
        builder: ``module:function`` under ``benchmarks.zoo``; the function takes the output
            folder and writes ``saved_model/`` and ``sample.parquet`` there.
        export: how it is exported (as that library's docs do it).
        patterns: keys of :data:`PATTERNS` it covers.
        legacy_keras: build with ``TF_USE_LEGACY_KERAS=1`` (Keras 2 as ``tf.keras``).
        signature: the signature to analyze (``None``: recadvisor's default choice).
    """

    name: str
    library: str
    package: str | None
    builder: str
    export: str
    patterns: tuple[str, ...]
    legacy_keras: bool = False
    signature: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


ZOO: tuple[ZooModel, ...] = (
    ZooModel(
        "deepctr_deepfm",
        "DeepCTR",
        "deepctr",
        "deepctr_models:build_deepfm",
        'model.save(path, save_format="tf")',
        ("string_hash", "vocab", "numeric_as_string"),
        legacy_keras=True,
    ),
    ZooModel(
        "deepctr_din",
        "DeepCTR",
        "deepctr",
        "deepctr_models:build_din",
        'model.save(path, save_format="tf")',
        ("string_hash", "string_mask", "sequence", "multi_valued"),
        legacy_keras=True,
    ),
    ZooModel(
        "deepctr_mmoe",
        "DeepCTR",
        "deepctr",
        "deepctr_models:build_mmoe",
        'model.save(path, save_format="tf")',
        ("string_hash", "multi_task"),
        legacy_keras=True,
    ),
    ZooModel(
        "deepctr_xdeepfm",
        "DeepCTR",
        "deepctr",
        "deepctr_models:build_xdeepfm",
        'model.save(path, save_format="tf")',
        ("string_hash", "numeric_as_string"),
        legacy_keras=True,
    ),
    ZooModel(
        "deepmatch_dssm",
        "DeepMatch",
        "deepmatch",
        "deepmatch_models:build_dssm",
        'user tower Model(model.user_input, model.user_embedding).save(path, save_format="tf")',
        ("string_hash", "string_mask", "sequence", "multi_valued"),
        legacy_keras=True,
    ),
    ZooModel(
        "deepmatch_fm",
        "DeepMatch",
        "deepmatch",
        "deepmatch_models:build_fm",
        'model.save(path, save_format="tf") (user x item score)',
        ("sequence",),
        legacy_keras=True,
    ),
    ZooModel(
        "tfrs_retrieval",
        "TensorFlow Recommenders",
        "tensorflow-recommenders",
        "tfrs_models:build_retrieval",
        "tf.saved_model.save(BruteForce index)",
        ("rank1", "string_output", "vocab", "string_hash"),
        legacy_keras=True,
    ),
    ZooModel(
        "tfrs_dcn_multitask",
        "TensorFlow Recommenders",
        "tensorflow-recommenders",
        "tfrs_models:build_dcn_multitask",
        'model.save(path, save_format="tf")',
        ("vocab", "int_lookup", "multi_task"),
        legacy_keras=True,
    ),
    ZooModel(
        "keras_rs_dcn",
        "Keras-RS",
        "keras-rs",
        "keras3_models:build_keras_rs_dcn",
        'model.export(path, format="tf_saved_model")',
        ("vocab", "int_lookup", "bucketize"),
    ),
    ZooModel(
        "keras_rs_retrieval",
        "Keras-RS",
        "keras-rs",
        "keras3_models:build_keras_rs_retrieval",
        'model.export(path, format="tf_saved_model")',
        ("rank1", "string_output", "vocab", "string_hash"),
    ),
    ZooModel(
        "keras3_preprocessing",
        "Keras 3 preprocessing",
        "keras",
        "keras3_models:build_keras3_preprocessing",
        'model.export(path, format="tf_saved_model")',
        (
            "string_mask",
            "multi_valued",
            "sequence",
            "vocab",
            "int_lookup",
            "strong_hash",
            "bucketize",
            "crossed",
        ),
    ),
    ZooModel(
        "fc_wide_deep",
        "tf-keras feature columns",
        "tf_keras",
        "feature_column_models:build_wide_deep",
        'model.save(path, save_format="tf")',
        (
            "sparse_fc",
            "string_hash",
            "vocab",
            "int_lookup",
            "crossed",
            "bucketize",
            "multi_valued",
            "string_mask",
        ),
        legacy_keras=True,
    ),
    ZooModel(
        "fc_sequence",
        "tf-keras feature columns",
        "tf_keras",
        "feature_column_models:build_sequence",
        'model.save(path, save_format="tf")',
        ("sparse_fc", "sequence", "multi_valued", "string_hash", "vocab", "string_mask"),
        legacy_keras=True,
    ),
    ZooModel(
        "tf1_session",
        "TensorFlow 1 (tf.compat.v1)",
        None,
        "tf1_models:build_session",
        "SavedModelBuilder(...).add_meta_graph_and_variables(sess, main_op=tables_initializer())",
        (
            "tf1",
            "rank1",
            "sparse_fc",
            "string_hash",
            "vocab",
            "multi_valued",
            "int_lookup",
            "multi_task",
            "string_mask",
        ),
    ),
)


def by_name(name: str) -> ZooModel:
    """The zoo model called ``name``.

    Raises:
        KeyError: no such model (the message lists the names).
    """
    for model in ZOO:
        if model.name == name:
            return model
    raise KeyError(f"no zoo model {name!r}; known: {', '.join(m.name for m in ZOO)}")
