"""`wine_api.spark` on a real local Spark (pyspark from PyPI, Debian's Java, `local[2]`: two executor threads, Python
workers run by this virtualenv's interpreter): a million rows from Parquet scored by `predict`, equal row for row to
`wine-api predict` on the same file, the version and fingerprint stamped on every row; the forest too; the SQL
function; `spark-submit` of the module as the README shows it; and the refusals: a tampered version, an unsigned one
when a key is set, bytes changed on their way to the executors, a DataFrame without a feature."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import RandomForestClassifier

from harness import plant_pickle, run_cli
from wine_api.batch import BatchError
from wine_api.data import feature_schema, load_wine_data
from wine_api.store import (ModelIntegrityError, ModelSignatureError, bundled_model_dir, load_signing_key, new_key_pair,
                            save_model, verify_version)
from wine_api.train import describe_estimator, serving_files

pyspark = pytest.importorskip("pyspark")  # a dev requirement: CI has it; `pip install "wine_api[spark]"` elsewhere
import wine_api.spark as wspark  # noqa: E402

WINE = load_wine_data()


@pytest.fixture(scope="module")
def spark():
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the executors' Python: this virtualenv, with the package
    from pyspark.sql import SparkSession
    session = (SparkSession.builder.master("local[2]").appName("wine_api tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
               .config("spark.driver.memory", "2g").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def rows_file(path, n:int, seed:int=0):
    "`n` rows: wines with noise, one in ten random and far outside the training ranges; an id column."
    rng, X = np.random.default_rng(seed), WINE.X.to_numpy()
    A = X[rng.integers(0, len(X), n)] * rng.normal(1, .02, (n, X.shape[1]))
    low, high = X.min(axis=0), X.max(axis=0)
    far = rng.random(n) < .1
    A[far] = rng.uniform(low - 3 * (high - low), high + 3 * (high - low), (far.sum(), X.shape[1]))
    frame = pd.DataFrame(np.round(A, 4), columns=WINE.feature_names)
    frame.insert(0, "id", np.arange(n))
    frame.to_parquet(path, row_group_size=100_000)
    return path


def assert_same_scores(spark_scores:pd.DataFrame, cli_scores:pd.DataFrame, fingerprint:str):
    "Row for row, by id: the same class, name, probabilities and warnings; the version stamped on every row."
    a, b = spark_scores.sort_values("id").reset_index(drop=True), cli_scores.sort_values("id").reset_index(drop=True)
    assert a["id"].tolist() == b["id"].tolist()
    for column in ["class", "class_name", "warnings", "model_version", "model_fingerprint"] + [
            f"probability_{c}" for c in WINE.class_names]:
        assert a[column].tolist() == b[column].tolist(), column
    assert set(a["model_fingerprint"]) == {fingerprint} and a["error"].isna().all()


def test_a_million_rows_from_parquet_equal_to_the_cli(spark, tmp_path):
    source = rows_file(tmp_path/"rows.parquet", 1_000_000)
    df = spark.read.parquet(str(source))
    scored = wspark.predict(df, bundled_model_dir(), keep=["id"])
    assert scored.rdd.getNumPartitions() >= 2
    scored.write.parquet(str(tmp_path/"spark-scores"))
    cli = run_cli("predict", source, "-o", "cli.parquet", "--id-column", "id", cwd=tmp_path, timeout=600)
    assert cli.returncode == 0, cli.stderr
    spark_scores = pq.read_table(tmp_path/"spark-scores").to_pandas()
    assert len(spark_scores) == 1_000_000
    assert_same_scores(spark_scores, pq.read_table(tmp_path/"cli.parquet").to_pandas(),
                       verify_version(bundled_model_dir()).fingerprint)


def test_a_forest_and_the_sql_function_agree_with_the_cli(spark, tmp_path):
    X = WINE.X.to_numpy(np.float32).astype(np.float64)
    forest = RandomForestClassifier(n_estimators=40, random_state=1).fit(X, WINE.y)
    serving, _ = serving_files(forest, X, len(WINE.class_names))
    store = tmp_path/"forest"
    save_model(forest, store, feature_schema(WINE.X), WINE.class_names, serving=serving,
               estimator=describe_estimator(forest))
    source = rows_file(tmp_path/"rows.parquet", 60_000, seed=4)
    cli = run_cli("predict", source, "--model", store, "-o", "cli.parquet", "--id-column", "id", cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    cli_scores = pq.read_table(tmp_path/"cli.parquet").to_pandas()
    df = spark.read.parquet(str(source))
    assert_same_scores(wspark.predict(df, f"file://{store}", keep=["id"]).toPandas(), cli_scores,
                       verify_version(store).fingerprint)
    spark.udf.register("wine_predict", wspark.sql_function(store))
    df.createOrReplaceTempView("wines")
    sql = spark.sql("SELECT id, wine_predict(struct(*)) AS score FROM wines").select("id", "score.*").toPandas()
    assert_same_scores(sql, cli_scores, verify_version(store).fingerprint)


def test_tampered_unsigned_or_changed_versions_score_no_row(spark, tmp_path):
    df = spark.createDataFrame(WINE.X.assign(id=range(len(WINE.X))))
    tampered = tmp_path/"tampered"
    shutil.copytree(bundled_model_dir(), tampered)
    tree = next((tampered/"versions").glob("*/tree.npz"))
    data = tree.read_bytes()
    tree.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])  # one bit flipped
    with pytest.raises(ModelIntegrityError, match="does not match its manifest"): wspark.predict(df, tampered)
    private, public_pem = new_key_pair()
    (tmp_path/"signing.key").write_bytes(private); (tmp_path/"verify.pub").write_bytes(public_pem)
    signing, public = load_signing_key(tmp_path/"signing.key"), tmp_path/"verify.pub"
    with pytest.raises(ModelSignatureError, match="is not signed"):
        wspark.predict(df, bundled_model_dir(), verify_key=public)
    signed = tmp_path/"signed"
    X = WINE.X.to_numpy(np.float32)
    version = save_model(load_forest_free_tree(X), signed, feature_schema(WINE.X), WINE.class_names,
                         signing_key=signing)
    assert wspark.predict(df, signed, verify_key=public, keep=["id"]).count() == len(WINE.X)
    with pytest.raises(BatchError, match="has no column 'hue'"): wspark.predict(df.drop("hue"), signed)

    # bytes changed between the driver's check and the executors: each executor refuses before scoring a row
    shipped = wspark.ship_version(version.path, public)
    changed = wspark.ShippedVersion(shipped.manifest, shipped.serving_name, shipped.serving[:-1] + b"\1",
                                    shipped.fingerprint, shipped.signature, shipped.public_key)
    kept = ["id"]
    job = df.mapInArrow(lambda batches: wspark.score_batches(batches, changed, kept),
                        wspark.spark_output_schema(df, wspark.open_shipped(shipped), shipped.fingerprint, kept))
    with pytest.raises(Exception, match="does not match its manifest"): job.collect()

    marker = tmp_path/"unpickled"  # neither the driver nor an executor unpickles: the pickle is a live payload here
    plant_pickle(version.path, marker)  # (the manifest changes, so no longer with the key)
    assert wspark.predict(df, version.path, keep=["id"]).count() == len(WINE.X) and not marker.exists()


def load_forest_free_tree(X):
    "A small decision tree (the signed version's model)."
    from sklearn.tree import DecisionTreeClassifier
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, WINE.y)


def test_spark_submit_runs_the_module_as_the_readme_shows(tmp_path):
    source = rows_file(tmp_path/"rows.parquet", 5_000, seed=7)
    submit = Path(sys.executable).parent/"spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    run = subprocess.run([str(submit), "--master", "local[2]", "--conf", "spark.ui.enabled=false",
                          wspark.__file__, "--model", str(bundled_model_dir()), "--keep", "id",
                          str(source), str(tmp_path/"scores")], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    scores = pq.read_table(tmp_path/"scores").to_pandas()
    cli = run_cli("predict", source, "-o", "cli.parquet", "--id-column", "id", cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert_same_scores(scores, pq.read_table(tmp_path/"cli.parquet").to_pandas(),
                       verify_version(bundled_model_dir()).fingerprint)
