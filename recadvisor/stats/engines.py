"""The engines that run the aggregations of :mod:`recadvisor.stats.queries`.

Both register the log files as a view named ``data`` and stream query results back as Arrow
record batches of the schema the aggregation declares; the same SQL text runs on both.

* :class:`DuckDBEngine` (default): embedded, out of core. ``memory_limit`` caps its buffers and
  it spills to ``temp_directory``; ``threads`` defaults to the CPU count.
* :class:`SparkEngine` (``pip install recadvisor[spark]``, Java 17): ``local[N]``, ``yarn``,
  ``spark://host:port``, or the session ``spark-submit`` already started. Results come back
  partition by partition (``toLocalIterator``), so the driver holds one partition at a time.

An engine that cannot start (pyspark or Java missing, a master that cannot be reached) raises
:class:`~recadvisor.errors.EngineError`; data it cannot read raises
:class:`~recadvisor.errors.DataError`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from recadvisor.errors import DataError, EngineError
from recadvisor.stats.dataset import Dataset
from recadvisor.stats.queries import BOOL, DUCKDB, FLOAT, INT, SPARK, STRING, Dialect

log = logging.getLogger(__name__)

ENGINES = ("duckdb", "spark")
BATCH_ROWS = 65536
_MESSAGE_CHARS = 300
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)


def parse_memory(text: str) -> int:
    """``2GiB`` / ``512MB`` / ``1.5G`` -> bytes (binary units).

    Raises:
        EngineError: the text is not a size.
    """
    m = _SIZE.match(text or "")
    if not m:
        raise EngineError(f"--memory-limit '{text}' is not a size; write e.g. 2GiB or 512MiB")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


def one_line(error: BaseException) -> str:
    """An exception as one short line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 3] + "..."


def _kind_of_arrow(t: pa.DataType) -> tuple[str, bool]:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _kind_of_arrow(t.value_type)[0], True
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return STRING, False
    if pa.types.is_boolean(t):
        return BOOL, False
    if pa.types.is_integer(t):
        return INT, False
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return FLOAT, False
    return str(t), False


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


class DuckDBEngine:
    """DuckDB over the log files (see the module docstring).

    Args:
        dataset: the files.
        memory_limit: bytes DuckDB may use for its buffers.
        spill_dir: where it spills.
        threads: worker threads (default: the CPU count).
    """

    dialect: Dialect = DUCKDB
    name = "duckdb"

    def __init__(
        self, dataset: Dataset, memory_limit: int, spill_dir: str, threads: int | None = None
    ) -> None:
        if dataset.remote:
            raise EngineError(
                "the duckdb engine reads local files; read hdfs://, s3a://... data with "
                "--engine spark"
            )
        try:
            import duckdb
        except ImportError as e:  # a core dependency, but say how to fix a broken install
            raise EngineError("duckdb is not installed; pip install duckdb") from e
        self._duckdb = duckdb
        self.version = duckdb.__version__
        self.con = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": f"{max(memory_limit // 2**20, 64)}MiB",
                "temp_directory": spill_dir,
                "threads": int(threads or os.cpu_count() or 1),
                "preserve_insertion_order": False,
            },
        )
        files = _sql_list(dataset.paths)
        reader = {
            "parquet": f"read_parquet({files}, hive_partitioning = true, union_by_name = true)",
            "csv": f"read_csv({files}, header = true, all_varchar = true, "
            "hive_partitioning = true, union_by_name = true)",
            "jsonl": f"read_json({files}, format = 'newline_delimited', "
            "hive_partitioning = true, union_by_name = true)",
        }[dataset.format]
        self._run(f"CREATE VIEW data AS SELECT * FROM {reader}")

    def _run(self, sql: str) -> Any:
        try:
            return self.con.sql(sql)
        except self._duckdb.Error as e:
            raise DataError(f"duckdb cannot read the data: {one_line(e)}") from e

    def columns(self) -> dict[str, tuple[str, bool]]:
        """Column name -> (kind, holds lists)."""
        schema = self._run("SELECT * FROM data LIMIT 0").to_arrow_table().schema
        return {f.name: _kind_of_arrow(f.type) for f in schema}

    def batches(self, sql: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Run ``sql`` and yield its rows as batches of ``schema``."""
        try:  # a relation streams in ORDER BY order (a DB-API cursor's reader does not)
            reader = self._run(sql).to_arrow_reader(BATCH_ROWS)
        except self._duckdb.Error as e:
            raise DataError(f"duckdb cannot read the data: {one_line(e)}") from e
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (self._duckdb.Error, pa.ArrowInvalid) as e:
                raise DataError(f"duckdb cannot read the data: {one_line(e)}") from e
            yield pa.RecordBatch.from_arrays(
                [batch.column(i).cast(f.type) for i, f in enumerate(schema)], schema=schema
            )

    def close(self) -> None:
        """Close the connection (its spill files go with it)."""
        self.con.close()


_SPARK_KINDS = {
    "string": STRING,
    "varchar": STRING,
    "char": STRING,
    "tinyint": INT,
    "smallint": INT,
    "int": INT,
    "bigint": INT,
    "float": FLOAT,
    "double": FLOAT,
    "boolean": BOOL,
}


def _spark_kind(type_name: str) -> tuple[str, bool]:
    if type_name.startswith("array<") and type_name.endswith(">"):
        return _spark_kind(type_name[6:-1])[0], True
    base = type_name.split("(")[0]
    if base == "decimal":
        return FLOAT, False
    return _SPARK_KINDS.get(base, type_name), False


def check_spark_master(master: str, timeout: float = 5.0) -> None:
    """Refuse a master that cannot work before starting a JVM.

    ``spark://host:port[,host:port]``: one of the hosts must accept a TCP connection;
    ``yarn``: ``HADOOP_CONF_DIR`` or ``YARN_CONF_DIR`` must be set; ``local``, ``local[N]``,
    ``local[*]`` and ``k8s://...`` pass.

    Raises:
        EngineError: the master cannot be reached or is not a master URL.
    """
    if master.startswith("spark://"):
        errors = []
        for hostport in master[len("spark://") :].split(","):
            host, _, port = hostport.rpartition(":")
            try:
                with socket.create_connection((host, int(port)), timeout=timeout):
                    return
            except (OSError, ValueError) as e:
                errors.append(f"{hostport}: {one_line(e)}")
        raise EngineError(
            f"Spark master {master} cannot be reached ({'; '.join(errors)}); start the master "
            "or pass --spark-master local[2]"
        )
    if master == "yarn":
        if not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
            raise EngineError(
                "--spark-master yarn needs HADOOP_CONF_DIR (or YARN_CONF_DIR) pointing at the "
                "cluster's configuration"
            )
        return
    if re.fullmatch(r"local(\[(\d+|\*)(,\d+)?\])?", master) or master.startswith("k8s://"):
        return
    raise EngineError(
        f"--spark-master '{master}' is not a Spark master URL; use local[2], yarn or "
        "spark://host:7077"
    )


class SparkEngine:
    """Spark SQL over the log files (see the module docstring).

    Args:
        dataset: the files (paths every executor can read: a shared file system, HDFS, S3).
        master: ``local[2]``, ``yarn``, ``spark://host:port``, or ``None`` to use the session
            ``spark-submit`` started (else ``local[*]``).
        memory_limit: driver memory in local mode (``spark.driver.memory``).
        spill_dir: ``spark.local.dir``.
    """

    dialect: Dialect = SPARK
    name = "spark"

    def __init__(
        self, dataset: Dataset, master: str | None, memory_limit: int, spill_dir: str
    ) -> None:
        try:
            import pyspark
            from pyspark.sql import SparkSession
        except ImportError as e:
            raise EngineError(
                "--engine spark needs pyspark: pip install 'recadvisor[spark]' (and Java 17)"
            ) from e
        self.version = pyspark.__version__
        if master is not None:
            check_spark_master(master)
        active = SparkSession.getActiveSession()
        self._owned = active is None
        if active is not None and master is not None and active.sparkContext.master != master:
            raise EngineError(
                f"a Spark session on {active.sparkContext.master} is already running in this "
                f"process; it cannot also use {master}"
            )
        if active is None:
            if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
                raise EngineError("--engine spark needs a Java 17 runtime (java not found)")
            builder = (
                SparkSession.builder.appName("recadvisor-stats")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.local.dir", spill_dir)
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.sql.ansi.enabled", "false")
            )
            if master is not None:
                builder = builder.master(master)
            if master is not None and master.startswith("local"):
                builder = builder.config("spark.driver.memory", f"{memory_limit // 2**20}m")
                # one machine: a few shuffle partitions, not the cluster default of 200
                builder = builder.config(
                    "spark.sql.shuffle.partitions", str(4 * (os.cpu_count() or 1))
                )
            try:
                active = builder.getOrCreate()
            except Exception as e:  # noqa: BLE001 - the JVM reports many kinds
                raise EngineError(f"Spark did not start on {master}: {one_line(e)}") from e
        self.spark = active
        self.master = active.sparkContext.master
        reader = active.read
        if dataset.root is not None and not dataset.remote:
            reader = reader.option("basePath", dataset.root)
        try:
            if dataset.format == "parquet":
                frame = reader.parquet(*dataset.paths)
            elif dataset.format == "csv":
                frame = reader.csv(dataset.paths, header=True, inferSchema=False)
            else:
                frame = reader.json(dataset.paths)
        except Exception as e:  # noqa: BLE001 - AnalysisException and Py4J errors
            raise DataError(f"spark cannot read the data: {one_line(e)}") from e
        frame.createOrReplaceTempView("data")
        self._frame = frame

    def columns(self) -> dict[str, tuple[str, bool]]:
        """Column name -> (kind, holds lists)."""
        return {f.name: _spark_kind(f.dataType.simpleString()) for f in self._frame.schema.fields}

    def batches(self, sql: str, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Run ``sql`` and yield its rows as batches of ``schema``."""
        names = schema.names
        try:
            rows = self.spark.sql(sql).toLocalIterator(prefetchPartitions=True)
            chunk: list[Any] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) >= BATCH_ROWS:
                    yield _rows_to_batch(chunk, names, schema)
                    chunk = []
        except Exception as e:  # noqa: BLE001 - Py4J and Spark errors on user data
            if isinstance(e, (DataError, EngineError)):
                raise
            raise DataError(f"spark cannot read the data: {one_line(e)}") from e
        if chunk:
            yield _rows_to_batch(chunk, names, schema)

    def close(self) -> None:
        """Stop the session when this engine started it."""
        if self._owned:
            self.spark.stop()


def _rows_to_batch(rows: list[Any], names: list[str], schema: pa.Schema) -> pa.RecordBatch:
    arrays = [pa.array([r[i] for r in rows], type=f.type) for i, f in enumerate(schema)]
    return pa.RecordBatch.from_arrays(arrays, names=names)
