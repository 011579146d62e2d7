"""Adapters changed on a running server (issue 17), measured on this machine with the real demo model, a
real server on loopback (`python -m inference_app`) and real HTTP streams. The change is made as deploy
makes it: the adapter's files are written to the share folder, then settings.json; the server notices
it by itself (it polls settings.json once a second) and loads the adapter without a restart.

    .venv/bin/python benchmarks/live_adapters.py [--streams 8] [--served 1,4,16] [--tokens 32]

Prints, side by side in one run:
  (a) with --streams concurrent streams on `base` and an existing adapter, deploying a new adapter: the time
      from the upload done (settings.json written) to the new adapter's first answer (target <= 3 s), failed
      requests (target 0), the slowest request during the change against the median request (target < 3x),
      and the server's pid before and after (target: the same);
  (b) for 1, 4 and 16 adapters served: the time to load one more, and the throughput (streamed tokens/s) of
      the other variants while it loads, as a ratio to the throughput just before.
Absolute figures drift with the machine's load (it is shared); compare within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inference_app.contract import settings_digest  # noqa: E402

PROMPT = [{"role": "user", "content": "Tell me about rivers."}]


def make_adapters(base: Path, out: Path, count: int) -> list[Path]:
    """`count` PEFT LoRA adapters of the base model, shaped like the demo adapter (r 16 on q, k, v, o)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folders = []
    for i in range(count):
        torch.manual_seed(i)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        config = LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                            init_lora_weights=False)
        get_peft_model(model, config).save_pretrained(out / f"a{i}")
        folders.append(out / f"a{i}")
    return folders


class Server:
    def __init__(self, root: Path, port: int, log: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AITK_")}
        env.update(AITK_MOUNT_ROOT=str(root), AITK_SETTINGS=str(root / "inference/settings.json"), HOST="127.0.0.1",
                   PORT=str(port), PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
                   OMP_WAIT_POLICY="PASSIVE")
        self.url = f"http://127.0.0.1:{port}"
        self.log = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "inference_app"], cwd=REPO, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: see {log}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"server not ready in 180 s: see {log}")

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=10).json()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


class Streams:
    """Clients streaming completions of the given variants in a loop: every request's start, end and
    outcome, and the time of every streamed delta."""

    def __init__(self, url: str, variants: list[str], tokens: int):
        self.url, self.tokens = url, tokens
        self.requests: list[tuple[float, float, str | None, str]] = []  # start, end, error, variant
        self.deltas: list[float] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(v,), daemon=True) for v in variants]

    def _run(self, variant: str) -> None:
        # ignore_eos: every request generates exactly `tokens`, so durations compare (a random adapter may say EOS at once)
        body = {"model": variant, "messages": PROMPT, "max_tokens": self.tokens, "temperature": 0, "stream": True,
                "ignore_eos": True}
        with httpx.Client(timeout=120) as client:
            for _ in range(10_000):  # bounded
                if self._stop.is_set():
                    return
                start, error = time.monotonic(), None
                try:
                    with client.stream("POST", self.url + "/v1/chat/completions", json=body) as r:
                        if r.status_code != 200:
                            error = f"HTTP {r.status_code}"
                        else:
                            for line in r.iter_lines():
                                if line.startswith("data: {"):
                                    self.deltas.append(time.monotonic())
                except httpx.HTTPError as e:
                    error = f"{type(e).__name__}: {e}"
                self.requests.append((start, time.monotonic(), error, variant))

    def start(self) -> "Streams":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(120)

    def warm(self, each: int = 2, timeout: float = 120) -> None:
        """Wait until every stream has finished `each` requests (the "before" figures)."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < each * len(self._threads) and time.monotonic() < deadline:
            time.sleep(0.2)

    def rate(self, t0: float, t1: float) -> float:
        return sum(1 for t in self.deltas if t0 <= t < t1) / max(t1 - t0, 1e-9)


def share(tmp: Path, base: Path) -> Path:
    root = tmp / "mount"
    (root / "model-cache").mkdir(parents=True)
    (root / "model-cache" / base.name).symlink_to(base.resolve(), target_is_directory=True)
    (root / "inference").mkdir()
    return root


def write_settings(root: Path, base: Path, adapters: dict[str, str]) -> str:
    data = json.dumps({"base_model": f"model-cache/{base.name}", "adapters": adapters}).encode()
    (root / "inference/settings.json").write_bytes(data)
    return settings_digest(data)


def wait_hash(server: Server, digest: str, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = server.health()
        if body.get("settings_hash") == digest:
            return time.monotonic()
        if (body.get("apply_error") or {}).get("settings_hash") == digest:
            raise SystemExit(f"refused: {body['apply_error']['error']}")
        time.sleep(0.05)
    raise SystemExit(f"settings {digest} not served in {timeout} s")


def first_answer(url: str, variant: str, timeout: float = 60) -> float:
    """Ask `variant` until it answers 200; the time it did."""
    body = {"model": variant, "messages": PROMPT, "max_tokens": 1, "temperature": 0}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.post(url + "/v1/chat/completions", json=body, timeout=60)
        if r.status_code == 200:
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"{variant} did not answer in {timeout} s")


def scenario_a(tmp: Path, base: Path, adapters: list[Path], streams: int, tokens: int, port: int) -> dict:
    root = share(tmp / "a", base)
    shutil.copytree(adapters[0], root / "models/existing")
    write_settings(root, base, {"existing": "models/existing"})
    server = Server(root, port, tmp / "a.log")
    try:
        pid = server.proc.pid
        load = Streams(server.url, ["base", "existing"] * (streams // 2), tokens).start()
        load.warm()
        shutil.copytree(adapters[1], root / "models/new")  # the upload
        uploaded = time.monotonic()
        write_settings(root, base, {"existing": "models/existing", "new": "models/new"})
        answered = first_answer(server.url, "new")
        load.warm(each=len(load.requests) // max(streams, 1) + 2)  # the requests running during the change end
        load.stop()
        # each request against the median of its own variant's requests that ended before the upload
        before = {v: statistics.median([e - s for s, e, err, var in load.requests if var == v and err is None and e < uploaded])
                  for v in ("base", "existing")}
        during = [(e - s) / before[v] for s, e, err, v in load.requests if err is None and e >= uploaded and s <= answered]
        return {"new adapter answers after upload (s)": answered - uploaded,
                "failed requests": sum(1 for _, _, err, _ in load.requests if err),
                "requests": len(load.requests),
                "median request before the change (s)": statistics.median(before.values()),
                "slowest during change / median": max(during or [0]),
                "same pid": server.proc.poll() is None and server.proc.pid == pid}
    finally:
        server.close()


def scenario_b(tmp: Path, base: Path, adapters: list[Path], served: int, tokens: int, port: int) -> dict:
    root = share(tmp / f"b{served}", base)
    names = {}
    for i, folder in enumerate(adapters[:served]):
        shutil.copytree(folder, root / f"models/s{i}")
        names[f"s{i}"] = f"models/s{i}"
    write_settings(root, base, names)
    server = Server(root, port, tmp / f"b{served}.log")
    try:
        load = Streams(server.url, ["base", "s0", "base", "s0"], tokens).start()
        load.warm()
        shutil.copytree(adapters[served], root / "models/extra")
        before_end = time.monotonic()
        digest = write_settings(root, base, names | {"extra": "models/extra"})
        served_at = wait_hash(server, digest)
        load.stop()
        return {"load one more adapter (s)": served_at - before_end,
                "throughput during load / before": load.rate(before_end, served_at) / load.rate(before_end - 6, before_end)}
    finally:
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--served", default="1,4,16")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--only", choices=("a", "b"), help="run one part")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from helpers import free_port

    from aitk_nb.demo import demo_assets

    assets = demo_assets()
    served = [int(n) for n in args.served.split(",")]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        print(f"making the adapters (demo-shaped LoRAs of {assets.base_model.name}) ...", flush=True)
        adapters = make_adapters(assets.base_model, tmp / "adapters", 2 if args.only == "a" else max(max(served) + 1, 2))
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
        print(f"CPU: {model}, {os.cpu_count()} cores\n")
        if args.only != "b":
            a = scenario_a(tmp, assets.base_model, adapters, args.streams, args.tokens, free_port())
            print(f"(a) {args.streams} streams on base and an existing adapter, a new adapter deployed:")
            for key, value in a.items():
                print(f"    {key:42s} {value:.2f}" if isinstance(value, float) else f"    {key:42s} {value}")
        if args.only == "a":
            return
        print("\n(b) one adapter loaded into a running server (4 streams on base and s0 meanwhile):")
        print(f"    {'adapters served':>16s} {'load (s)':>10s} {'throughput during / before':>28s}")
        for n in served:
            b = scenario_b(tmp, assets.base_model, adapters, n, args.tokens, free_port())
            print(f"    {n:>16d} {b['load one more adapter (s)']:>10.2f} {b['throughput during load / before']:>28.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
