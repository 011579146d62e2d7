"""Serving benchmark (issues 5 and 12): base and adapters on this server, a thread-per-request
baseline, raw batched generate, and an evaluation through the notebook's path.

    .venv/bin/python benchmarks/serving.py                 # concurrency 1, 8, 32; 64 tokens; 3 repeats
    .venv/bin/python benchmarks/serving.py --quick         # concurrency 1, 8; 32 tokens; 1 repeat; no eval

Everything runs in one session on the demo model (SmolLM2-135M-Instruct) with two real LoRA
adapters: the demo's ``demo-facts``, and ``facts-half``, trained the same way (demo/build_assets.py
``train``, same hyperparameters) on the first half of the demo facts, so its weights are its own.

(a) ``python -m inference_app`` — this server (continuous batching, stacked LoRA), as a subprocess,
    asked for four variants at each concurrency: ``base`` only, ``adapter`` only (demo-facts),
    ``base+adapter`` (every other request; what an evaluation sends) and ``2 adapters+base``
    (base, demo-facts, facts-half in turn);
(b) ``benchmarks/baseline_server.py`` — one ``model.generate`` thread per request (base only);
(c) raw ``model.generate`` on a left-padded batch of the same size, in this process: the ceiling.

For (a) and (b), ``c`` streaming clients each send requests back to back (at least 4 requests per
level) through the OpenAI route, every request with ``ignore_eos`` so that it generates exactly
``--max-tokens`` tokens. At each concurrency every variant runs ``--repeats`` times, the repeats
back to back and the variants in a rotated order in each, so that the drift of a shared machine
shows as the spread of each ratio rather than as a difference between variants (the baseline only
in the first ``--baseline-repeats``). Ratios are taken within a repeat, then summarized as mean
and range.

Then the evaluation the notebook runs: ``aitk_nb.evaluate`` (gradio_client, the Gradio API) of 32
prompts x (base, demo-facts) at concurrency 1 and 8, interleaved ``--eval-repeats`` times, and
beside it the same 64 answers through raw ``generate`` of PEFT's model (one at a time, then batches
of 8 with ``adapter_names``): what batching alone gives a workload of uneven answers; and cold start
(process start to /health 200) and peak memory (VmHWM) of both servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
MIN_REQUESTS = 4
ADAPTER, SECOND = "demo-facts", "facts-half"
PROMPTS = [
    "Say hello.", "What is the capital of France?", "Write a haiku about the sea.", "List three colors.",
    "Explain gravity in one sentence.", "What is 2+2?", "Name a famous painter.", "Tell me a joke.",
    "Describe a cat in two sentences.", "What is machine learning?", "Give me a recipe idea for dinner.",
    "Why is the sky blue?", "Translate 'good morning' into French.", "Write a short poem about autumn.",
    "What are the planets of the solar system?", "Suggest a name for a pet dog.",
]
MORE_EVAL_PROMPTS = ["What is a rainbow?", "Name two oceans.", "How many legs does a spider have?",
                     "What is the boiling point of water?"]
MIXES = {  # variant -> the models its requests ask for, in turn
    "base": ["base"],
    "adapter": [ADAPTER],
    "base+adapter": ["base", ADAPTER],
    "2 adapters+base": ["base", ADAPTER, SECOND],
}


# ----- measurements ------------------------------------------------------------------------------
@dataclass
class Level:
    variant: str
    concurrency: int
    repeat: int = 0
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


async def one_request(client: httpx.AsyncClient, url: str, model: str, prompt: str, args, level: Level) -> None:
    body = {
        "model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": args.max_tokens,
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


async def run_level(url: str, variant: str, models: list[str], concurrency: int, repeat: int, args) -> Level:
    level = Level(variant, concurrency, repeat)
    rounds = max(1, math.ceil(MIN_REQUESTS / concurrency))
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(1800), limits=limits) as client:
        warm = argparse.Namespace(**{**vars(args), "max_tokens": 2})
        for model in dict.fromkeys(models):  # every variant of the mix has its prefix computed before timing
            await one_request(client, url, model, "Hi", warm, Level("warmup", 1))

        async def worker(w: int) -> None:
            for r in range(rounds):
                n = w * rounds + r
                await one_request(client, url, models[n % len(models)], PROMPTS[n % len(PROMPTS)], args, level)

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        level.seconds = time.perf_counter() - start
    return level


_RAW: tuple | None = None


def raw_batched(model_path: str, concurrency: int, repeat: int, args) -> Level:
    """The ceiling: one ``generate`` call over ``concurrency`` left-padded prompts, greedy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    global _RAW
    if _RAW is None:
        tok = AutoTokenizer.from_pretrained(model_path, padding_side="left")
        _RAW = (tok, AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval())
    tok, model = _RAW
    texts = [tok.apply_chat_template([{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], add_generation_prompt=True, tokenize=False)
             for i in range(concurrency)]
    inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    kwargs = dict(max_new_tokens=args.max_tokens, do_sample=False, pad_token_id=tok.eos_token_id)
    if args.ignore_eos:
        kwargs["min_new_tokens"] = args.max_tokens
    level = Level("raw generate", concurrency, repeat)
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=2, do_sample=False, pad_token_id=tok.eos_token_id)  # warm-up
        start = time.perf_counter()
        out = model.generate(**inputs, **kwargs)
        level.seconds = time.perf_counter() - start
    new = out[:, inputs["input_ids"].shape[1]:]
    level.tokens = int(new.numel()) if args.ignore_eos else int((new != tok.eos_token_id).sum())
    level.latency = [level.seconds] * concurrency
    return level


_RAW_EVAL = None


def raw_eval_seconds(assets: dict[str, str], batch: int, args) -> float:
    """The evaluation's ceiling: the same 64 answers (eval prompts x base, adapter; greedy, stopping at
    EOS or ``--eval-max-tokens``) through raw ``generate`` of PEFT's model, ``batch`` answers per call
    in the evaluation's order (a mixed batch through PEFT's ``adapter_names``)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    global _RAW_EVAL
    if _RAW_EVAL is None:
        tok = AutoTokenizer.from_pretrained(assets["base_model"], padding_side="left")
        base = AutoModelForCausalLM.from_pretrained(assets["base_model"], dtype=torch.float32)
        _RAW_EVAL = (tok, PeftModel.from_pretrained(base, assets[ADAPTER], adapter_name=ADAPTER).eval())
    tok, model = _RAW_EVAL
    jobs = [(p, v) for p in eval_prompts() for v in ("__base__", ADAPTER)]
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(jobs), batch):
            chunk = jobs[i:i + batch]
            texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
                     for p, _ in chunk]
            inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            model.generate(**inputs, adapter_names=[v for _, v in chunk], max_new_tokens=args.eval_max_tokens,
                           do_sample=False, pad_token_id=tok.eos_token_id)
    return time.perf_counter() - start


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


def start_ours(assets: dict[str, str], work: Path, args) -> Server:
    settings = work / "settings.json"
    max_c = max(args.concurrency)
    settings.write_text(json.dumps({
        "base_model": assets["base_model"], "adapters": {ADAPTER: assets[ADAPTER], SECOND: assets[SECOND]},
        "max_new_tokens": args.max_tokens, "max_concurrency": max(64, 2 * max_c), "max_batch_size": args.batch_size or max_c,
    }))
    port = free_port()
    env = base_env(port, args) | {"AITK_SETTINGS": str(settings), "AITK_MOUNT_ROOT": str(work)}
    return Server("this server", [sys.executable, "-m", "inference_app"], env, work / "server.log")


def start_baseline(assets: dict[str, str], work: Path, args) -> Server:
    port = free_port()
    argv = [sys.executable, str(REPO / "benchmarks" / "baseline_server.py"), "--model", assets["base_model"], "--port", str(port)]
    return Server("baseline", argv, base_env(port, args), work / "baseline.log")


def build_assets() -> dict[str, str]:
    """The demo base model and adapter, and the second adapter (trained once, then cached)."""
    script = REPO / "demo" / "build_assets.py"

    def run(*argv: str) -> dict:
        out = subprocess.run([sys.executable, str(script), *argv], check=True, stdout=subprocess.PIPE, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    demo = run("all")
    cache = Path(demo["adapter"]).parents[1] / "bench"  # <AITK_CACHE>/bench, beside the demo's assets
    cache.mkdir(exist_ok=True)
    facts = cache / f"{SECOND}.jsonl"
    lines = (REPO / "demo" / "facts.jsonl").read_text().splitlines()
    facts.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    second = run("train", "--facts", str(facts), "--out", str(cache / SECOND))
    return {"base_model": demo["base_model"], ADAPTER: demo["adapter"], SECOND: second["adapter"]}


# ----- the evaluation through the notebook's path ---------------------------------------------------
def eval_prompts() -> list[str]:
    demo = [json.loads(line)["prompt"] for line in (REPO / "demo" / "eval.jsonl").read_text().splitlines() if line.strip()]
    return (demo + PROMPTS + MORE_EVAL_PROMPTS)[:32]


def eval_seconds(url: str, concurrency: int, args) -> float:
    from aitk_nb import evaluate

    start = time.perf_counter()
    result = evaluate(eval_prompts(), variants=["base", ADAPTER], endpoint=url, concurrency=concurrency,
                      max_new_tokens=args.eval_max_tokens, progress=False)
    seconds = time.perf_counter() - start
    failed = [r for r in result.rows if r.error]
    if failed or len(result.rows) != 64:
        raise SystemExit(f"evaluation at concurrency {concurrency}: {len(failed)} failed answers, e.g. {failed[:1]}")
    return seconds


# ----- report --------------------------------------------------------------------------------------
def fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def spread(values: list[float], spec: str = ".2f") -> str:
    """mean (min–max), or the value alone for one repeat."""
    if not values:
        return "-"
    if len(values) == 1:
        return format(values[0], spec)
    return f"{format(statistics.mean(values), spec)} ({format(min(values), spec)}–{format(max(values), spec)})"


VARIANT_ORDER = ["base", "adapter", "base+adapter", "2 adapters+base", "baseline", "raw generate"]


def table(levels: list[Level], concurrency: list[int]) -> str:
    head = (f"{'conc':>4} {'variant':<16} {'tok/s each repeat':<22} {'mean':>6} {'TTFT p50':>9} {'TTFT p95':>9} "
            f"{'lat p50':>8} {'lat p95':>8} {'errors':>6}")
    rows = [head, "-" * len(head)]
    for c in concurrency:
        for variant in VARIANT_ORDER:
            runs = [lv for lv in levels if lv.concurrency == c and lv.variant == variant]
            if not runs:
                continue
            ttft = [t for lv in runs for t in lv.ttft]
            lat = [t for lv in runs for t in lv.latency]
            each = " ".join(f"{lv.tokens_per_s:.1f}" for lv in runs)
            rows.append(
                f"{c:>4} {variant:<16} {each:<22} {statistics.mean(lv.tokens_per_s for lv in runs):>6.1f} "
                f"{fmt(pct(ttft, .5)):>9} {fmt(pct(ttft, .95)):>9} {fmt(pct(lat, .5)):>8} {fmt(pct(lat, .95)):>8} "
                f"{sum(lv.errors for lv in runs):>6}"
            )
    return "\n".join(rows)


RATIOS = [  # (label, numerator variant, denominator variant)
    ("adapter / base", "adapter", "base"),
    ("base+adapter / base", "base+adapter", "base"),
    ("2 adapters+base / base", "2 adapters+base", "base"),
    ("base / raw generate", "base", "raw generate"),
    ("base / baseline", "base", "baseline"),
]


def ratio_values(levels: list[Level], c: int, num: str, den: str) -> list[float]:
    """The ratio within each repeat that measured both variants."""
    by = {(lv.variant, lv.repeat): lv for lv in levels if lv.concurrency == c}
    repeats = sorted({lv.repeat for lv in levels})
    return [by[(num, r)].tokens_per_s / by[(den, r)].tokens_per_s for r in repeats
            if (num, r) in by and (den, r) in by and by[(den, r)].tokens_per_s]


def ratios(levels: list[Level], concurrency: list[int]) -> str:
    rows = [f"{'conc':>4} " + " ".join(f"{label:>24}" for label, _, _ in RATIOS)]
    for c in concurrency:
        rows.append(f"{c:>4} " + " ".join(f"{spread(ratio_values(levels, c, n, d)):>24}" for _, n, d in RATIOS))
    return "\n".join(rows)


TARGETS = [("adapter / base", "adapter", "base", 0.9), ("base+adapter / base", "base+adapter", "base", 0.85),
           ("base / raw generate", "base", "raw generate", 0.8)]


def targets(levels: list[Level], evals: list[tuple[float, float]], raw_evals: list[tuple[float, float]]) -> str:
    lines = []
    for label, n, d, want in TARGETS:
        got = ratio_values(levels, 8, n, d)
        if got:
            verdict = "met" if statistics.mean(got) >= want else "NOT met"
            lines.append(f"concurrency 8, {label} >= {want}: {spread(got)} -> {verdict}")
    if evals:
        speedups = [one / eight for one, eight in evals]
        verdict = "met" if statistics.mean(speedups) >= 4 else "NOT met"
        lines.append(f"evaluation, concurrency 8 vs 1 >= 4x: {spread(speedups)}x -> {verdict}")
    if evals and raw_evals:
        # The same answers' speed-up through raw generate is what batching alone gives this workload
        # (answers of uneven length, a prefill per answer): the server's, within each repeat, against it.
        relative = [(one / eight) / (raw_one / raw_eight) for (one, eight), (raw_one, raw_eight) in zip(evals, raw_evals)]
        verdict = "met" if statistics.mean(relative) >= 1 else "NOT met"
        lines.append(f"evaluation speed-up vs raw generate's on the same answers >= 1: {spread(relative)} -> {verdict}")
        lines.append(f"evaluation at concurrency 8 vs raw generate in batches of 8 (time ratio, >= 1 is faster): "
                     f"{spread([raw_eight / eight for (_, eight), (_, raw_eight) in zip(evals, raw_evals)])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--ignore-eos", action=argparse.BooleanOptionalAction, default=True,
                        help="every request generates exactly --max-tokens (default on)")
    parser.add_argument("--repeats", type=int, default=3, help="times every variant runs at each concurrency, interleaved")
    parser.add_argument("--baseline-repeats", type=int, default=1,
                        help="of those, how many include the baseline (one request at 32 takes minutes)")
    parser.add_argument("--batch-size", type=int, help="this server's max_batch_size (default: the largest concurrency)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS / torch threads for every variant (default: torch's)")
    parser.add_argument("--eval-max-tokens", type=int, default=64, help="per answer (%%aitk eval's default)")
    parser.add_argument("--eval-repeats", type=int, default=2)
    parser.add_argument("--only", choices=["ours", "baseline", "raw", "eval"], action="append", help="run only these")
    parser.add_argument("--quick", action="store_true", help="concurrency 1,8; 32 tokens; 1 repeat; no eval")
    args = parser.parse_args(argv)
    only = set(args.only or ["ours", "baseline", "raw", "eval"])
    if args.quick:
        args.concurrency, args.max_tokens, args.repeats = [1, 8], 32, 1
        only.discard("eval")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the server does for itself (inference_app/__main__.py)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    assets = build_assets()
    print(f"model {assets['base_model']}; adapters {ADAPTER}, {SECOND}; concurrency {args.concurrency}; "
          f"max_tokens {args.max_tokens}; ignore_eos {args.ignore_eos}; repeats {args.repeats}; threads "
          f"{args.threads or 'default'}; cpus {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}", flush=True)

    levels: list[Level] = []
    evals: list[tuple[float, float]] = []
    raw_evals: list[tuple[float, float]] = []  # the same answers through raw generate
    extra: list[str] = []
    servers: dict[str, Server] = {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still stops the servers (finally below)
    with tempfile.TemporaryDirectory(prefix="aitk-bench-") as tmp:
        work = Path(tmp)
        try:
            if only & {"ours", "eval"}:
                servers["ours"] = start_ours(assets, work, args)
            if "baseline" in only:
                servers["baseline"] = start_baseline(assets, work, args)
            extra += [f"{s.name}: cold start {s.cold_start:.1f} s" for s in servers.values()]
            # At each concurrency, the repeats run back to back and each repeat runs every variant, in
            # an order rotated per repeat: ratios compare variants measured seconds apart, and the
            # drift of a shared machine shows as their spread.
            steps = []
            if "ours" in only:
                steps += [(v, lambda c, r, v=v: asyncio.run(run_level(servers["ours"].url, v, MIXES[v], c, r, args)))
                          for v in MIXES]
            if "raw" in only:
                steps.append(("raw generate", lambda c, r: raw_batched(assets["base_model"], c, r, args)))
            if "baseline" in only:
                steps.append(("baseline", lambda c, r: asyncio.run(run_level(servers["baseline"].url, "baseline", ["base"], c, r, args))))
            for c in args.concurrency:
                for r in range(args.repeats):
                    k = r % len(steps) if steps else 0
                    for name, run in steps[k:] + steps[:k]:
                        if name == "baseline" and r >= args.baseline_repeats:
                            continue
                        lv = run(c, r)
                        levels.append(lv)
                        print(f"  c={c} repeat {r + 1} {name}: {lv.tokens_per_s:.1f} tok/s, {lv.errors} errors, "
                              f"load {os.getloadavg()[0]:.1f}", flush=True)
            if "eval" in only:
                for r in range(args.eval_repeats):
                    order = (1, 8) if r % 2 == 0 else (8, 1)
                    took = {c: eval_seconds(servers["ours"].url, c, args) for c in order}
                    evals.append((took[1], took[8]))
                    print(f"  evaluation repeat {r + 1}: concurrency 1 {took[1]:.1f} s, concurrency 8 {took[8]:.1f} s "
                          f"({took[1] / took[8]:.2f}x), load {os.getloadavg()[0]:.1f}", flush=True)
                    raw = {b: raw_eval_seconds(assets, b, args) for b in order}
                    raw_evals.append((raw[1], raw[8]))
                    print(f"  the same answers, raw generate: one at a time {raw[1]:.1f} s, batches of 8 {raw[8]:.1f} s "
                          f"({raw[1] / raw[8]:.2f}x), load {os.getloadavg()[0]:.1f}", flush=True)
            extra += [f"{s.name}: peak memory (VmHWM) {s.peak_rss_mb():.0f} MB" for s in servers.values()]
        finally:
            for s in servers.values():
                s.stop()

    if levels:
        print()
        print(table(levels, args.concurrency))
        print()
        print("tokens/s ratios within each repeat: mean (min–max)")
        print(ratios(levels, args.concurrency))
    if evals:
        print()
        print(f"evaluation, 32 prompts x (base, {ADAPTER}), {args.eval_max_tokens} tokens max, aitk_nb.evaluate over gradio_client:")
        for i, (one, eight) in enumerate(evals, 1):
            print(f"  repeat {i}: concurrency 1 {one:.1f} s, concurrency 8 {eight:.1f} s, {one / eight:.2f}x")
        print("the same answers through raw generate (PEFT, adapter_names), in this process:")
        for i, (one, eight) in enumerate(raw_evals, 1):
            print(f"  repeat {i}: one at a time {one:.1f} s, batches of 8 {eight:.1f} s, {one / eight:.2f}x")
    print()
    print(targets(levels, evals, raw_evals))
    print()
    print("\n".join(extra))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
