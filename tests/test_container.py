"""The image and its deployment, for real: built with podman from the repository's Dockerfile on a Debian base image,
run read-only as a non-root uid, its Deployment's pod run with `podman kube play`, two replicas sharing one store,
every manifest validated offline, and the manifests checked against the app and the CLI."""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml

from harness import (REPO, Container, Load, assert_like_scikit_learn, build_image, failed, free_port, podman,
                     process_tree_pss_mib, run_cli, store_with_two_versions, wait_until_ready)
from wine_api.app import DEFAULT_CONFIG, create_app
from wine_api.cli import serve
from wine_api.data import TUTORIAL_ROW, load_wine_data
from wine_api.engine import far_rows
from wine_api.predict import load_predictor
from wine_api.store import bundled_model_dir, load_model

DEPLOY = REPO/"deploy"
BIN = Path(sys.executable).parent


def documents(path:Path) -> list: return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest(name:str) -> dict: return documents(DEPLOY/"kubernetes"/name)[0]


@pytest.fixture(scope="module")
def image():
    "The image, built once for this module; its size is printed."
    tag = build_image()
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)
    print(f"\nimage {tag}: {size / 2**20:.0f} MiB")
    return tag


# Static checks: the Dockerfile and the manifests

def test_the_dockerfile_passes_hadolint():
    proc = subprocess.run([BIN/"hadolint", "--failure-threshold", "warning", REPO/"Dockerfile"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


KUBERNETES_FILES = sorted(p.name for p in (DEPLOY/"kubernetes").glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("name", KUBERNETES_FILES)
def test_every_manifest_validates_strictly(name):
    proc = subprocess.run([BIN/"kubernetes-validate", "--strict", DEPLOY/"kubernetes"/name], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "INFO" in proc.stdout, proc.stdout + proc.stderr


def test_the_kustomization_lists_every_manifest_but_the_secret():
    listed = set(manifest("kustomization.yaml")["resources"])
    assert listed == set(KUBERNETES_FILES) - {"secret.yaml"}


KSERVE_PREDICTOR_FIELDS = {  # the fields of KServe's v1beta1 PredictorSpec we use (checked against the kserve SDK 0.21)
    "minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "securityContext", "containers", "volumes"}


def test_the_inference_service_is_kserve_v1beta1_with_a_valid_pod():
    import kubernetes_validate
    service = documents(DEPLOY/"kserve"/"inferenceservice.yaml")[0]
    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    predictor = service["spec"]["predictor"]
    assert set(predictor) <= KSERVE_PREDICTOR_FIELDS, set(predictor) - KSERVE_PREDICTOR_FIELDS
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"},
           "spec": {k: predictor[k] for k in ("containers", "volumes", "securityContext")}}
    kubernetes_validate.validate(pod, "1.30", strict=True)  # raises on any unknown or ill-typed field
    container = predictor["containers"][0]
    assert container["name"] == "kserve-container" and container["ports"][0]["containerPort"] == 8080
    assert container["args"][:3] == ["serve", "--model-dir", "/mnt/models"]


def app_paths() -> set:
    return {rule.rule for rule in create_app().url_map.iter_rules()}


def test_probe_paths_ports_and_settings_exist_in_the_app_and_the_cli():
    pod = manifest("deployment.yaml")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    service = documents(DEPLOY/"kserve"/"inferenceservice.yaml")[0]["spec"]["predictor"]["containers"][0]
    probes = [container[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
    probes += [service[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")]
    assert set(probes) <= app_paths()
    assert container["ports"][0]["containerPort"] == 8080 and "WINE_API_PORT=8080" in (REPO/"Dockerfile").read_text()
    envvars = {p.envvar for p in serve.params if getattr(p, "envvar", None)}
    settings = set(manifest("configmap.yaml")["data"])
    known = envvars | {f"WINE_API_{name}" for name in DEFAULT_CONFIG}
    assert settings <= known, settings - known
    options = {o for p in serve.params for o in p.opts}
    assert container["args"] == ["serve"] and "--model-dir" in options
    train = manifest("train-job.yaml")["spec"]["template"]["spec"]["containers"][0]["args"]
    help_text = run_cli("train", "--help", cwd=REPO).stdout
    assert all(arg in help_text for arg in train if arg.startswith("--"))


# The image, run

def test_the_container_serves_the_models_answers_read_only_as_non_root(image):
    container = Container(image, "--read-only")  # podman mounts a tmpfs on /tmp with --read-only
    try:
        print(f"\ncontainer cold start to /ready: {container.cold_start:.2f} s")
        assert requests.post(container.url + "/api/", json=[TUTORIAL_ROW], timeout=5).json() == [2]
        X = load_wine_data().X.to_numpy()
        answer = requests.post(container.url + "/predict", json={"instances": X.tolist()}, timeout=10).json()
        predictor = load_predictor(bundled_model_dir())
        expected = predictor.predict(X.astype(np.float32))
        assert [p["class"] for p in answer["predictions"]] == expected.classes.tolist()
        assert np.allclose([list(p["probabilities"].values()) for p in answer["predictions"]], expected.probabilities)
        assert container.exec("python3", "-c", "import os; print(os.getuid(), os.getgid())").split() == ["10001"] * 2
        assert "Read-only file system" in podman("exec", container.id, "touch", "/opt/x", check=False).stderr
        assert podman("healthcheck", "run", container.id, check=False).returncode == 0
        print(f"container PSS (master + 2 workers): {process_tree_pss_mib(container.host_pid()):.1f} MiB")
    finally:
        took = container.stop(seconds=10)
    print(f"SIGTERM to stopped: {took:.2f} s")
    assert took < 10


def test_a_container_settings_come_from_the_environment(image, tmp_path):
    tmp_path.chmod(0o755)  # the container's uid reads the key file through this mount
    keys = tmp_path/"keys"
    keys.write_text("container-key-0123456789\n")
    keys.chmod(0o644)
    container = Container(image, "--read-only", "-e", "WINE_API_WORKERS=1", "-e", "WINE_API_API_KEY_FILE=/keys/keys",
                          "-v", f"{tmp_path}:/keys:ro")
    try:
        assert requests.post(container.url + "/api/", json=[TUTORIAL_ROW], timeout=5).status_code == 401
        assert requests.post(container.url + "/api/", json=[TUTORIAL_ROW], timeout=5,
                             headers={"Authorization": "Bearer container-key-0123456789"}).json() == [2]
        assert len(Path(f"/proc/{container.host_pid()}/task/{container.host_pid()}/children").read_text().split()) == 1
    finally:
        container.stop()


def pod_for_podman(tmp_path:Path, image:str, port:int) -> Path:
    """The Deployment (and its ConfigMap) as `podman kube play` can run it here: the local image, the store and the key
    file on host directories, the HTTP port published on loopback."""
    store, keys = tmp_path/"models", tmp_path/"keys"
    store.mkdir()
    keys.mkdir()
    (keys/"keys").write_text("pod-key-0123456789abcdef\n")
    for path in (store, keys, keys/"keys"): path.chmod(0o777 if path.is_dir() else 0o644)
    deployment = manifest("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    pod["containers"][0]["image"] = image
    pod["containers"][0]["ports"][0]["hostPort"] = port
    pod["containers"][0]["ports"][0]["hostIP"] = "127.0.0.1"
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "models" and v["name"] != "api-keys"] + [
        {"name": "models", "hostPath": {"path": str(store), "type": "Directory"}},
        {"name": "api-keys", "hostPath": {"path": str(keys), "type": "Directory"}}]
    deployment["spec"]["replicas"] = 1
    for init in pod.pop("initContainers"):  # podman 4.3's kube play fails to remove a finished init container:
        podman("run", "--rm", "--read-only", "--user", "10001:10001", "-v", f"{store}:/models",  # run it first, alike
               "--entrypoint", init["command"][0], image, *init["command"][1:], *init["args"])
    path = tmp_path/"pod.yaml"
    path.write_text(yaml.safe_dump_all([manifest("configmap.yaml"), deployment]))
    return path


POD = "wine-api-pod-0"  # the name podman gives the Deployment's one pod


def test_the_deployments_pod_runs_with_podman_kube_play(image, tmp_path):
    port = free_port()
    pod_yaml = pod_for_podman(tmp_path, image, port)
    podman("pod", "rm", "-f", POD, check=False)  # a pod left by an interrupted run
    podman("kube", "play", pod_yaml)
    try:
        assert wait_until_ready(f"http://127.0.0.1:{port}", seconds=60), podman("pod", "logs", "--latest",
                                                                                 check=False).stderr[-3000:]
        assert (tmp_path/"models"/"CURRENT").read_text().strip() == "1"  # the init container seeded the store
        r = requests.post(f"http://127.0.0.1:{port}/api/", json=[TUTORIAL_ROW], timeout=5,
                          headers={"Authorization": "Bearer pod-key-0123456789abcdef"})
        assert r.json() == [2] and r.headers["X-Model-Version"] == "1"
        server = [c for c in json.loads(podman("ps", "-a", "--format", "json").stdout)
                  if c["Names"][0].endswith("-wine-api")]
        assert server
        inspect = json.loads(podman("inspect", server[0]["Id"]).stdout)[0]
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True and inspect["Config"]["User"].startswith("10001")
        # the probes, as the kubelet sends them: HTTP from outside the container to the pod's port (podman turns the
        # liveness probe into a healthcheck that runs curl inside the container, which has no curl)
        assert "/health" in " ".join(inspect["Config"]["Healthcheck"]["Test"])
        for path in ("/health", "/ready"): assert requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).ok
    finally:
        podman("kube", "down", pod_yaml, check=False)
        podman("pod", "rm", "-f", POD, check=False)


def version_answering(url:str) -> str:
    return requests.post(url + "/api/", json=[TUTORIAL_ROW], timeout=5).headers.get("X-Model-Version")


def test_two_replicas_sharing_a_store_follow_a_promote_within_2_s_under_load(image, tmp_path):
    store = store_with_two_versions(tmp_path)
    replicas = [Container(image, "--read-only", "-v", f"{store}:/models:ro", "-e", "WINE_API_MODEL_DIR=/models",
                          "-e", "WINE_API_RELOAD_INTERVAL=0.5", "-e", "WINE_API_PREDICTION_LOG=/tmp/predictions.sqlite")
                for _ in range(2)]  # a read-only store has no room for the log beside it
    loads = [Load("127.0.0.1", r.port, "/api/", json.dumps([TUTORIAL_ROW] * 5).encode(), connections=4).start()
             for r in replicas]
    try:
        assert [version_answering(r.url) for r in replicas] == ["1", "1"]
        time.sleep(1)
        asked = time.monotonic()
        assert run_cli("models", "--model-dir", store, "promote", "2", cwd=tmp_path).returncode == 0
        promoted = time.monotonic()  # CURRENT has moved: the replicas' part starts (the command's own start-up is not theirs)
        while any(version_answering(r.url) != "2" for r in replicas) and time.monotonic() - promoted < 10:
            time.sleep(0.05)
        took = time.monotonic() - promoted
        time.sleep(1)
    finally:
        outcomes = [load.stop() for load in loads]
        for r in replicas: r.stop()
    print(f"\nboth replicas on version 2 {took:.2f} s after the promote (the command took {promoted - asked:.2f} s); "
          f"requests: {[len(o) for o in outcomes]}")
    assert took < 2
    assert all(len(o) > 100 and not failed(o) for o in outcomes), [failed(o)[:3] for o in outcomes]
    assert all({x.version for x in o} == {"1", "2"} for o in outcomes)


def test_the_training_job_runs_in_the_image_read_only_into_a_mounted_store(image, tmp_path):
    "What the Job and CronJob run: `wine-api train` from the same image, as uid 10001 on a read-only root."
    store = tmp_path/"models"
    store.mkdir(mode=0o777)
    store.chmod(0o777)
    args = manifest("train-job.yaml")["spec"]["template"]["spec"]["containers"][0]["args"]
    podman("run", "--rm", "--read-only", "--health-interval=disable", "-v", f"{store}:/models", image, *args)
    assert [p.name for p in (store/"versions").iterdir()] == ["1"] and not (store/"CURRENT").exists()  # --no-current
    assert len(list((store/"reports").glob("train-*.ipynb"))) == 1
    verified = run_cli("models", "--model-dir", store, "verify", cwd=tmp_path)
    assert verified.returncode == 0 and "version 1: verified" in verified.stdout, verified.stdout + verified.stderr


@pytest.mark.parametrize("family, engine", [("hist_gradient_boosting", "arrays"), ("svc", "skops")])
def test_the_job_trains_any_family_in_the_image_and_the_image_serves_it_as_scikit_learn(image, tmp_path, family,
                                                                                        engine):
    "The Job's command with `-p estimator NAME`, then a replica on that store: every wine and 2,000 far rows."
    store = tmp_path/"models"
    store.mkdir(mode=0o777)
    store.chmod(0o777)
    args = manifest("train-job.yaml")["spec"]["template"]["spec"]["containers"][0]["args"]
    podman("run", "--rm", "--read-only", "--health-interval=disable", "-v", f"{store}:/models", image, *args,
           "-p", "estimator", family, timeout=900)
    assert run_cli("models", "--model-dir", store, "promote", "1", cwd=tmp_path).returncode == 0
    X = load_wine_data().X.to_numpy()
    rows = np.vstack([X, far_rows(X.astype(np.float32).astype(np.float64), seed=2)])
    replica = Container(image, "--read-only", "-v", f"{store}:/models:ro", "-e", "WINE_API_MODEL_DIR=/models",
                        "-e", "WINE_API_PREDICTION_LOG=/tmp/predictions.sqlite")
    try:
        model = requests.get(replica.url + "/model", timeout=10).json()
        answer = requests.post(replica.url + "/predict", json={"instances": rows.tolist()}, timeout=60).json()
    finally:
        replica.stop()
    assert (model["estimator"]["family"], model["serving"]["engine"]) == (family, engine)
    names = model["class_names"]
    probabilities = np.array([[p["probabilities"][c] for c in names] for p in answer["predictions"]])
    assert_like_scikit_learn([p["class"] for p in answer["predictions"]], probabilities, load_model(store).estimator,
                             rows, exact=engine == "skops")
