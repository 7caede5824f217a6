"""focusnet.runtime: the allocator setting keeps freed large tensors for reuse (no page faults on
the next step) and is switched off by FOCUSNET_ALLOCATOR_TUNING=0."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from focusnet.runtime import env_flag

PROBE = r"""
import json, resource, sys, torch
from focusnet.runtime import tune_cpu_allocator
applied = tune_cpu_allocator()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(64 * 2**20 // 4); del x  # 64 MiB, above glibc's largest mmap threshold
before = faults()
for _ in range(5):
    x = torch.ones(64 * 2**20 // 4); del x
print(json.dumps({"applied": applied, "faults": faults() - before}))
"""


def _probe(tuning: str) -> dict:
    env = dict(os.environ, FOCUSNET_ALLOCATOR_TUNING=tuning, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt tuning is glibc (Linux) only")
def test_tuning_avoids_page_faults_and_can_be_switched_off() -> None:
    on, off = _probe("1"), _probe("0")
    assert on["applied"] is True and off["applied"] is False
    pages = 64 * 2**20 // 4096  # one 64 MiB tensor = 16384 pages
    assert off["faults"] > 4 * pages  # each of the 5 fresh mmaps faults every page in again
    assert on["faults"] < 1.5 * pages  # heap memory is reused: at most one tensor's pages, not five


def test_env_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FOCUSNET_X", raising=False)
    assert env_flag("FOCUSNET_X") is True and env_flag("FOCUSNET_X", default=False) is False
    for off in ("0", "false", " OFF ", "no"):
        monkeypatch.setenv("FOCUSNET_X", off)
        assert env_flag("FOCUSNET_X") is False
    monkeypatch.setenv("FOCUSNET_X", "1")
    assert env_flag("FOCUSNET_X") is True


LIBRARY_PROBE = r"""
import json, sys
from focusnet import runtime
if sys.argv[1] == "declined":
    runtime.tune_cpu_allocator(False)
from focusnet import create_model
create_model("unet")
print(json.dumps({"tuned": runtime.allocator_tuned()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt tuning is glibc (Linux) only")
@pytest.mark.parametrize(("env", "how", "expected"), [("1", "default", True), ("0", "default", False), ("1", "declined", False)])
def test_create_model_applies_the_setting_unless_opted_out(env: str, how: str, expected: bool) -> None:
    """A user's own loop around create_model gets the CLI's allocator (issue 15): the plain loop at
    256x256 took 11.4 s a step without it and 6.7 s with it; opting out stays possible."""
    run_env = dict(os.environ, FOCUSNET_ALLOCATOR_TUNING=env, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", LIBRARY_PROBE, how], env=run_env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"tuned": expected}


def test_omp_wait_policy_is_set_only_where_it_takes_effect_and_the_user_has_not_chosen() -> None:
    from focusnet.runtime import set_omp_wait_policy

    env: dict[str, str] = {}
    assert set_omp_wait_policy(env, modules=()) and env == {"OMP_WAIT_POLICY": "PASSIVE"}
    for user in ({"OMP_WAIT_POLICY": "active"}, {"GOMP_SPINCOUNT": "10000"}):
        env = dict(user)
        assert not set_omp_wait_policy(env, modules=()) and env == user  # the user's choice stands
    for off in ("default", "0", "OFF"):
        env = {"FOCUSNET_OMP_WAIT": off}
        assert not set_omp_wait_policy(env, modules=()) and "OMP_WAIT_POLICY" not in env
    env = {}
    assert not set_omp_wait_policy(env, modules=("torch",)) and env == {}  # libgomp has read its variables


OMP_PROBE = r"""
import json, os, sys
if sys.argv[1] == "torch-first":
    import torch  # noqa: F401
import focusnet
from focusnet.bench.machine import machine_info
print(json.dumps({"env": os.environ.get("OMP_WAIT_POLICY"), "recorded": machine_info()["omp_wait_policy"]}))
"""


@pytest.mark.parametrize(("order", "setting", "expected"), [
    ("focusnet-first", None, {"env": "PASSIVE", "recorded": "PASSIVE"}),
    ("focusnet-first", "default", {"env": None, "recorded": "libgomp default"}),
    ("torch-first", None, {"env": None, "recorded": "libgomp default"}),
])
def test_import_focusnet_sets_passive_waiting_before_torch(order: str, setting: str | None, expected: dict) -> None:
    """Beside busy processes a two-member `lite` inference took 0.2-17.5 s with libgomp's spinning
    and 0.13 s with PASSIVE waiting (benchmarks/bench_wait_policy.py)."""
    run_env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "FOCUSNET_OMP_WAIT")}
    if setting is not None:
        run_env["FOCUSNET_OMP_WAIT"] = setting
    out = subprocess.run([sys.executable, "-c", OMP_PROBE, order], env=run_env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected
