"""Serving benchmark (issue 5): this server vs a thread-per-request baseline vs raw batched generate.

    .venv/bin/python benchmarks/serving.py                 # concurrency 1, 8, 32; 64 tokens each
    .venv/bin/python benchmarks/serving.py --quick         # concurrency 1, 8; 32 tokens; no eval

Everything runs in one session on the same model (the demo base model unless ``--model``):

(a) ``python -m inference_app`` — this server (continuous batching), as a subprocess;
(b) ``benchmarks/baseline_server.py`` — one ``model.generate`` thread per request, no batching;
(c) raw ``model.generate`` on a left-padded batch of the same size, in this process: the ceiling.

For (a) and (b), ``c`` streaming clients each send requests back to back (at least 4 requests
per level) through the OpenAI route, every request with ``ignore_eos`` so that it generates
exactly ``--max-tokens`` tokens (``--no-ignore-eos`` to let them stop). Printed per variant and
concurrency: aggregate generated tokens/s, time to first token p50/p95, latency p50/p95, errors;
then the ratios; then cold start (process start to /health 200), peak memory (VmHWM of the
server process), and evaluation speed: 32 prompts through gradio_client's ``/generate`` at
concurrency 8 vs one at a time. Timings depend on what else runs on the machine; compare the
variants of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
MIN_REQUESTS = 4
PROMPTS = [
    "Say hello.", "What is the capital of France?", "Write a haiku about the sea.", "List three colors.",
    "Explain gravity in one sentence.", "What is 2+2?", "Name a famous painter.", "Tell me a joke.",
    "Describe a cat in two sentences.", "What is machine learning?", "Give me a recipe idea for dinner.",
    "Why is the sky blue?", "Translate 'good morning' into French.", "Write a short poem about autumn.",
    "What are the planets of the solar system?", "Suggest a name for a pet dog.",
]


# ----- measurements ------------------------------------------------------------------------------
@dataclass
class Level:
    variant: str
    concurrency: int
    seconds: float = 0.0
    tokens: int = 0
    ttft: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def one_request(client: httpx.AsyncClient, url: str, prompt: str, args, level: Level) -> None:
    body = {
        "model": "base", "messages": [{"role": "user", "content": prompt}], "max_tokens": args.max_tokens,
        "temperature": 0, "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": args.ignore_eos,
    }
    start = time.perf_counter()
    first = None
    tokens = 0
    try:
        async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                await r.aread()
                level.errors += 1
                return
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    level.errors += 1
                    return
                if first is None and any(c.get("delta", {}).get("content") for c in event.get("choices", [])):
                    first = time.perf_counter() - start
                if event.get("usage"):
                    tokens = event["usage"]["completion_tokens"]
    except httpx.HTTPError:
        level.errors += 1
        return
    level.latency.append(time.perf_counter() - start)
    if first is not None:
        level.ttft.append(first)
    level.tokens += tokens


async def run_level(url: str, variant: str, concurrency: int, args) -> Level:
    level = Level(variant, concurrency)
    rounds = max(1, math.ceil(MIN_REQUESTS / concurrency))
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(1800), limits=limits) as client:
        await one_request(client, url, "Hi", argparse.Namespace(**{**vars(args), "max_tokens": 2}), Level("warmup", 1))

        async def worker(w: int) -> None:
            for r in range(rounds):
                await one_request(client, url, PROMPTS[(w * rounds + r) % len(PROMPTS)], args, level)

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        level.seconds = time.perf_counter() - start
    return level


def raw_batched(model_path: str, concurrency: int, args) -> Level:
    """The ceiling: one ``generate`` call over ``concurrency`` left-padded prompts, greedy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    global _RAW
    if "_RAW" not in globals():
        tok = AutoTokenizer.from_pretrained(model_path, padding_side="left")
        _RAW = (tok, AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval())
    tok, model = _RAW
    texts = [tok.apply_chat_template([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], add_generation_prompt=True, tokenize=False)
             for i in range(concurrency)]
    inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    kwargs = dict(max_new_tokens=args.max_tokens, do_sample=False, pad_token_id=tok.eos_token_id)
    if args.ignore_eos:
        kwargs["min_new_tokens"] = args.max_tokens
    level = Level("raw generate", concurrency)
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=2, do_sample=False, pad_token_id=tok.eos_token_id)  # warm-up
        start = time.perf_counter()
        out = model.generate(**inputs, **kwargs)
        level.seconds = time.perf_counter() - start
    new = out[:, inputs["input_ids"].shape[1]:]
    level.tokens = int(new.numel()) if args.ignore_eos else int((new != tok.eos_token_id).sum())
    level.latency = [level.seconds] * concurrency
    return level


# ----- servers -------------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.log = name, log
        self.port = int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.started = time.perf_counter()
        with log.open("w") as out:
            self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.cold_start = self._wait_healthy()

    def _wait_healthy(self, timeout: float = 300) -> float:
        while time.perf_counter() - self.started < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{self.name} not healthy after {timeout} s:\n{self.log.read_text()}")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def base_env(port: int, args) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AITK_")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", PORT=str(port),
               HOST="127.0.0.1", PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    return env


def start_ours(model_path: str, work: Path, args) -> Server:
    settings = work / "settings.json"
    max_c = max(args.concurrency)
    settings.write_text(json.dumps({
        "base_model": model_path, "max_new_tokens": args.max_tokens,
        "max_concurrency": max(64, 2 * max_c), "max_batch_size": args.batch_size or max_c, "gradio_concurrency": 8,
    }))
    port = free_port()
    env = base_env(port, args) | {"AITK_SETTINGS": str(settings), "AITK_MOUNT_ROOT": str(work)}
    return Server("this server", [sys.executable, "-m", "inference_app"], env, work / "server.log")


def start_baseline(model_path: str, work: Path, args) -> Server:
    port = free_port()
    argv = [sys.executable, str(REPO / "benchmarks" / "baseline_server.py"), "--model", model_path, "--port", str(port)]
    return Server("baseline", argv, base_env(port, args), work / "baseline.log")


def eval_speed(server: Server, args) -> dict[int, float]:
    """Seconds for 32 prompts through gradio_client's /generate, at each evaluation concurrency."""
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(32)]
    client.predict("Hi", "base", 2, 0, 1, 50, api_name="/generate")  # warm-up
    out = {}
    for workers in (1, 8):
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            texts = list(pool.map(lambda p: client.predict(p, "base", args.eval_max_tokens, 0, 1, 50, api_name="/generate"), prompts))
        out[workers] = time.perf_counter() - start
        assert all(isinstance(t, str) and t for t in texts)
    return out


# ----- report --------------------------------------------------------------------------------------
def fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def table(levels: list[Level]) -> str:
    head = f"{'variant':<14} {'conc':>4} {'reqs':>4} {'tok/s':>7} {'TTFT p50':>9} {'TTFT p95':>9} {'lat p50':>8} {'lat p95':>8} {'errors':>6}"
    rows = [head, "-" * len(head)]
    for lv in levels:
        rows.append(
            f"{lv.variant:<14} {lv.concurrency:>4} {len(lv.latency) + lv.errors:>4} {lv.tokens_per_s:>7.1f} "
            f"{fmt(pct(lv.ttft, .5)):>9} {fmt(pct(lv.ttft, .95)):>9} {fmt(pct(lv.latency, .5)):>8} {fmt(pct(lv.latency, .95)):>8} {lv.errors:>6}"
        )
    return "\n".join(rows)


def ratios(levels: list[Level], concurrency: list[int]) -> str:
    by = {(lv.variant, lv.concurrency): lv for lv in levels}
    rows = [f"{'conc':>4} {'ours/baseline tok/s':>20} {'ours/raw tok/s':>15} {'TTFT p95 ours/baseline':>23}"]
    for c in concurrency:
        ours, base, raw = by.get(("this server", c)), by.get(("baseline", c)), by.get(("raw generate", c))
        r1 = ours.tokens_per_s / base.tokens_per_s if ours and base and base.tokens_per_s else None
        r2 = ours.tokens_per_s / raw.tokens_per_s if ours and raw and raw.tokens_per_s else None
        t_ours, t_base = (pct(ours.ttft, .95) if ours else None), (pct(base.ttft, .95) if base else None)
        r3 = t_ours / t_base if t_ours and t_base else None
        rows.append(f"{c:>4} {fmt(r1, '.2f') + 'x':>20} {fmt(r2, '.0%'):>15} {fmt(r3, '.2f') + 'x':>23}")
    return "\n".join(rows)


def demo_model() -> str:
    out = subprocess.run([sys.executable, str(REPO / "demo" / "build_assets.py"), "base"], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["base_model"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="base model folder (default: the demo model, built on first use)")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--ignore-eos", action=argparse.BooleanOptionalAction, default=True,
                        help="every request generates exactly --max-tokens (default on)")
    parser.add_argument("--batch-size", type=int, help="this server's max_batch_size (default: the largest concurrency)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS / torch threads for every variant (default: torch's)")
    parser.add_argument("--eval-max-tokens", type=int, default=32)
    parser.add_argument("--no-eval", dest="eval", action="store_false", help="skip the gradio_client evaluation run")
    parser.add_argument("--only", choices=["ours", "baseline", "raw"], action="append", help="run only these variants")
    parser.add_argument("--quick", action="store_true", help="concurrency 1,8; 32 tokens; no eval")
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency, args.max_tokens, args.eval = [1, 8], 32, False
    only = set(args.only or ["ours", "baseline", "raw"])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model_path = args.model or demo_model()
    print(f"model {model_path}; concurrency {args.concurrency}; max_tokens {args.max_tokens}; "
          f"ignore_eos {args.ignore_eos}; threads {args.threads or 'default'}; cpus {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)

    levels: list[Level] = []
    extra: list[str] = []
    with tempfile.TemporaryDirectory(prefix="aitk-bench-") as tmp:
        work = Path(tmp)
        for name, start in (("ours", start_ours), ("baseline", start_baseline)):
            if name not in only:
                continue
            server = start(model_path, work, args)
            try:
                extra.append(f"{server.name}: cold start {server.cold_start:.1f} s")
                for c in args.concurrency:
                    lv = asyncio.run(run_level(server.url, server.name, c, args))
                    levels.append(lv)
                    print(f"  {server.name} c={c}: {lv.tokens_per_s:.1f} tok/s, {lv.errors} errors", flush=True)
                extra.append(f"{server.name}: peak memory (VmHWM) {server.peak_rss_mb():.0f} MB")
                if name == "ours" and args.eval:
                    speeds = eval_speed(server, args)
                    extra.append(
                        f"evaluation, 32 prompts x {args.eval_max_tokens} tokens via gradio_client: "
                        f"one at a time {speeds[1]:.1f} s, concurrency 8 {speeds[8]:.1f} s "
                        f"({speeds[1] / speeds[8]:.2f}x faster)"
                    )
            finally:
                server.stop()
        if "raw" in only:
            for c in args.concurrency:
                lv = raw_batched(model_path, c, args)
                levels.append(lv)
                print(f"  raw generate c={c}: {lv.tokens_per_s:.1f} tok/s", flush=True)

    print()
    print(table(levels))
    print()
    print(ratios(levels, args.concurrency))
    print()
    print("\n".join(extra))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
