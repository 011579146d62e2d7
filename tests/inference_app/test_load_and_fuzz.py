"""Under load and bad input (issue 5): an overload burst gets immediate 503 + Retry-After and the
server stays healthy; memory stays flat over a bounded run; schemathesis finds no 5xx."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from inference_app.api import create_app
from inference_app.engine import TransformersEngine
from inference_app.settings import load_settings

pytestmark = pytest.mark.timeout(120)


def body(prompt: str = "Say hi.", **kw) -> dict:
    return {"model": "base", "messages": [{"role": "user", "content": prompt}], "max_tokens": 4, "temperature": 0} | kw


def test_overload_burst_of_64_is_refused_at_once_and_server_stays_healthy(server):
    """max_concurrency is 16 in the session server: past it, 503 with Retry-After, never a hang."""

    async def burst():
        async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60, limits=httpx.Limits(max_connections=80)) as c:
            return await asyncio.gather(*(c.post("/v1/chat/completions", json=body(f"Count to {i}.")) for i in range(64)))

    answers = asyncio.run(burst())
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503}, codes
    refused = [r for r in answers if r.status_code == 503]
    assert refused and codes.count(200) >= 16
    for r in refused:
        assert r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "overloaded"
    # "At once": a refusal does not wait for a slot; the admitted ones take the generation time.
    slowest_refusal = max(r.elapsed.total_seconds() for r in refused)
    assert slowest_refusal < 3, f"a refusal took {slowest_refusal:.1f} s"
    assert httpx.get(server.url + "/health").status_code == 200
    after = httpx.post(server.url + "/v1/chat/completions", json=body(), headers=server.auth, timeout=60)
    assert after.status_code == 200 and after.json()["choices"][0]["message"]["content"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_stays_flat_over_a_bounded_run(server, adapter_name):
    async def wave(c, n):
        reqs = [body(f"Name {i} fruits.", model=("base", adapter_name)[i % 2], max_tokens=6, ignore_eos=True) for i in range(n)]
        answers = await asyncio.gather(*(c.post("/v1/chat/completions", json=r) for r in reqs))
        assert all(a.status_code == 200 for a in answers)

    async def run():
        async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as c:
            for _ in range(2):  # warm-up: allocator pools and caches reach their working size
                await wave(c, 8)
            before = rss_mb(server.proc.pid)
            for _ in range(6):
                await wave(c, 8)
            return before, rss_mb(server.proc.pid)

    before, after = asyncio.run(run())
    assert after - before < 60, f"RSS grew from {before:.0f} MB to {after:.0f} MB over 48 requests"


# ----- schemathesis against the app's own OpenAPI document ----------------------------------
@pytest.fixture(scope="module")
def fuzz_app(mount_root):
    """The real app and engine in-process, with a tiny token limit so valid cases stay cheap."""
    s = load_settings({"AITK_MOUNT_ROOT": str(mount_root), "AITK_SETTINGS": str(mount_root / "inference" / "settings.json")})
    engine = TransformersEngine(s.model_copy(update={"max_new_tokens": 2, "max_new_tokens_limit": 2}))
    engine.load()
    yield create_app(engine, with_ui=False)
    engine.shutdown()


CASES_PER_OPERATION = 75
CHAT_CASES_WITH_A_REAL_MODEL = 150  # random model names are 404s; these reach the engine


def test_schemathesis_finds_no_5xx(fuzz_app, adapter_name):
    """Every operation of the app's own /openapi.json, driven by generated cases (valid and not),
    then the chat route again with ``model`` set to a real variant so that cases reach the engine.

    Hypothesis is driven directly rather than through schemathesis' pytest plugin, whose
    fixture support does not work with pytest 9 yet.
    """
    from hypothesis import given
    from hypothesis import strategies as st

    api = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {"/health", "/v1/models", "/v1/chat/completions"}
    seen: list[tuple[str, int]] = []

    def check(case) -> None:
        response = case.call()
        seen.append((case.path, response.status_code))
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} {case.body!r} -> {response.status_code} {response.text[:300]}"
        )

    fuzz = settings(max_examples=CASES_PER_OPERATION, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    for op in operations:
        given(case=op.as_strategy())(fuzz(lambda case: check(case)))()

    chat = next(op for op in operations if op.path == "/v1/chat/completions")

    @given(case=chat.as_strategy(), model=st.sampled_from(["base", adapter_name]))
    @settings(fuzz, max_examples=CHAT_CASES_WITH_A_REAL_MODEL)
    def real_model(case, model):
        if isinstance(case.body, dict):
            case.body = case.body | {"model": model}
        check(case)

    real_model()
    chat_codes = collections.Counter(code for path, code in seen if path == chat.path)
    assert len(seen) >= 200 and chat_codes[200] >= 10 and chat_codes[400] >= 10, chat_codes
