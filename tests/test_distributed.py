"""Data-parallel backends: real 2-rank runs (horovodrun, torchrun, horovod.spark) vs one process.

The worker is training.distributed.selftest: a tiny model with a sparse nn.Embedding and dense
Linear layers, trained 5 SGD(momentum) steps on a deterministic global batch of 16 that the ranks
shard. Averaging the gradients of equal-shard mean losses is the same math as one process on the
whole batch, so losses and final parameters must match the LocalBackend run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

import graphlake.training.distributed.launch as launch_mod
from graphlake.training.distributed import base, factory, selftest
from graphlake.training.distributed.launch import LaunchError, launch

ENTRY = "graphlake.training.distributed.selftest"
STEPS = ["--steps", "5", "--batch-size", "16"]
TOL = {"rel": 1e-5, "abs": 1e-6}


def require_horovod() -> None:
    """Fail (never skip) when horovod is missing: CI installs it through `make install`."""
    try:
        import horovod.torch  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"horovod.torch does not import ({exc}): run `bash training/distributed/build_horovod.sh` "
                    "(make install does it)")


def read_ranks(out, world_size: int) -> list[dict]:
    results = [json.loads((out / f"rank{r}.json").read_text()) for r in range(world_size)]
    assert [r["rank"] for r in results] == list(range(world_size))
    assert {r["world_size"] for r in results} == {world_size}
    return results


@pytest.fixture(scope="module")
def local_result(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("local")
    assert selftest.main(["--out", str(out), "--backend", "local", "--device", "cpu", *STEPS]) == 0
    return read_ranks(out, 1)[0]


def assert_matches_local(results: list[dict], local: dict) -> None:
    assert len({r["param_sha256"] for r in results}) == 1, "ranks ended with different parameters"
    for r in results:
        assert r["losses"] == pytest.approx(local["losses"], **TOL)
        assert r["params"] == pytest.approx(local["params"], **TOL)
    # the per-rank shard losses differ, their mean is the global loss
    assert results[0]["local_losses"] != results[1]["local_losses"]


@pytest.mark.timeout(120)
def test_horovodrun_two_ranks_match_single_process(tmp_path, local_result):
    require_horovod()
    assert launch("horovod", 2, ENTRY, ["--out", str(tmp_path), *STEPS], timeout_s=90) == 0
    assert_matches_local(read_ranks(tmp_path, 2), local_result)


@pytest.mark.timeout(120)
def test_torchrun_ddp_two_ranks_match_single_process(tmp_path, local_result):
    assert launch("ddp", 2, ENTRY, ["--out", str(tmp_path), *STEPS], timeout_s=90) == 0
    results = read_ranks(tmp_path, 2)
    assert {r["backend"] for r in results} == {"ddp"}
    assert_matches_local(results, local_result)


@pytest.mark.timeout(120)
def test_ddp_dense_sparse_mode_matches_single_process(tmp_path, local_result):
    """The NCCL path for sparse tables (densify + allreduce), exercised on gloo."""
    assert launch("ddp", 2, ENTRY, ["--out", str(tmp_path), "--sparse-grads", "dense", *STEPS],
                  timeout_s=90) == 0
    assert_matches_local(read_ranks(tmp_path, 2), local_result)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["horovod", "ddp"])
def test_killed_rank_fails_launch(tmp_path, backend):
    if backend == "horovod":
        require_horovod()
    start = time.monotonic()
    with pytest.raises(LaunchError, match=rf"{backend} launch failed: rank 1 exit code") as info:
        launch(backend, 2, ENTRY, ["--out", str(tmp_path), "--kill-rank", "1", "--kill-step", "2", *STEPS],
               timeout_s=60)
    assert info.value.backend == backend and info.value.rank == 1
    assert info.value.exit_code in (-9, 137)
    assert time.monotonic() - start < 60
    assert not (tmp_path / "rank1.json").exists()


@pytest.mark.timeout(90)
def test_timeout_kills_every_rank(tmp_path):
    """Rank 1 hangs at step 1 (rank 0 then blocks in the allreduce): launch kills the job at timeout_s."""
    start = time.monotonic()
    with pytest.raises(LaunchError, match=r"ddp launch failed: timed out after 15 s"):
        launch("ddp", 2, ENTRY, ["--out", str(tmp_path), "--hang-rank", "1", "--hang-step", "1", *STEPS],
               timeout_s=15)
    assert time.monotonic() - start < 35
    assert not leftover_processes(str(tmp_path)), "ranks left running after the timeout"


def leftover_processes(marker: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.timeout(180)
def test_horovod_spark_run_two_ranks(tmp_path, spark, local_result):
    require_horovod()
    start = time.monotonic()
    assert launch("horovod", 2, ENTRY, ["--out", str(tmp_path), *STEPS], mode="spark", spark=spark,
                  timeout_s=150) == 0
    print(f"horovod.spark.run: {time.monotonic() - start:.1f} s")
    assert_matches_local(read_ranks(tmp_path, 2), local_result)


@pytest.mark.timeout(180)
def test_torch_distributor_ddp_two_ranks(tmp_path, spark, local_result):
    start = time.monotonic()
    assert launch("ddp", 2, ENTRY, ["--out", str(tmp_path), *STEPS], mode="spark", spark=spark,
                  timeout_s=150, use_gpu=False) == 0
    print(f"TorchDistributor: {time.monotonic() - start:.1f} s")
    assert_matches_local(read_ranks(tmp_path, 2), local_result)


def test_launch_rejects_bad_input():
    spark_free_entry = ENTRY
    with pytest.raises(ValueError, match=r"backend: expected one of .* got 'mpi'"):
        launch("mpi", 2, spark_free_entry, [])
    with pytest.raises(ValueError, match=r"workers: expected an int >= 1, got 0"):
        launch("ddp", 0, spark_free_entry, [])
    with pytest.raises(ValueError, match=r"entry: expected an importable module, got 'no_such.module'"):
        launch("ddp", 2, "no_such.module", [])
    with pytest.raises(ValueError, match=r"entry: expected a dotted module name"):
        launch("ddp", 2, "tests/x.py", [])
    with pytest.raises(TypeError, match=r"args: expected a list of str"):
        launch("ddp", 2, spark_free_entry, "--out x")
    with pytest.raises(TypeError, match=r"spark: expected a SparkSession"):
        launch("ddp", 2, spark_free_entry, [], mode="spark")
    with pytest.raises(ValueError, match=r"timeout_s: expected a number > 0"):
        launch("ddp", 2, spark_free_entry, [], timeout_s=0)
    with pytest.raises(ValueError, match=r"workers: the local backend runs exactly 1 worker, got 2"):
        launch("local", 2, spark_free_entry, [])


def test_backend_helpers_and_errors(monkeypatch):
    assert base.local_shard(8, 1, 2) == slice(4, 8)
    with pytest.raises(ValueError, match=r"n: expected a non-negative multiple of world_size=3, got 8"):
        base.local_shard(8, 0, 3)
    with pytest.raises(ValueError, match=r"rank: expected 0 <= rank < 2, got 2"):
        base.local_shard(8, 2, 2)
    with pytest.raises(ValueError, match=r"name: expected one of .* got 'mpi'"):
        factory.get_backend("mpi")
    assert launch_mod.BACKEND_ENV == base.BACKEND_ENV
    monkeypatch.setenv(base.BACKEND_ENV, "local")
    backend = factory.get_backend(device="cpu")
    assert isinstance(backend, base.LocalBackend) and backend.is_root and backend.world_size == 1
    with pytest.raises(TypeError, match=r"value: expected a float, int or torch.Tensor, got str"):
        backend.allreduce_mean("1.0", "loss")
    rows = torch.arange(6.0).reshape(3, 2)
    assert torch.equal(backend.allreduce_sum(rows, "rows"), rows)  # one rank: the tensor itself
    with pytest.raises(TypeError, match=r"tensor: expected a dense torch.Tensor, got float"):
        backend.allreduce_sum(1.0, "rows")
    with pytest.raises(TypeError, match=r"name: expected a non-empty str, got ''"):
        backend.allreduce_sum(rows, "")
    with pytest.raises(TypeError, match=r"model: expected a torch.nn.Module, got int"):
        backend.wrap_model(3)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError, match=r"environment: expected RANK, .* missing RANK"):
        factory.get_backend("ddp")



def test_resolve_device_picks_and_refuses():
    import torch

    assert base.resolve_device(1, "cpu") == torch.device("cpu")
    assert base.resolve_device(0, torch.device("cpu")) == torch.device("cpu")
    assert base.resolve_device(3, "auto") == base.resolve_device(3, None)
    if torch.cuda.is_available():  # "cuda" is the rank's own GPU
        assert base.resolve_device(1, "cuda") == torch.device("cuda", 1 % torch.cuda.device_count())
    else:
        assert base.resolve_device(3, "auto") == torch.device("cpu")
        with pytest.raises(ValueError, match=r"device: 'cuda:1' asked for, but torch .* sees no CUDA GPU"):
            base.resolve_device(0, "cuda:1")
    with pytest.raises(TypeError, match="device: expected a str, torch.device or None, got int"):
        base.resolve_device(0, 0)
    with pytest.raises(ValueError, match="local_rank: expected an int >= 0, got -1"):
        base.resolve_device(-1, "cpu")
