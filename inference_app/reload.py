"""The server notices a new settings.json on the share by itself and applies adapter-only changes live.

Why polling (issue 17): on Azure the settings file sits on an SMB share (Azure Files), where no
inotify event reaches the container, and every replica must notice on its own (ingress reaches one
replica per request, so an admin route called once would change one replica). Reading a small file
once a second costs nothing next to a decode step.

A change of the file's content (``contract.settings_digest``) is read as settings; when only the
adapters differ from what is served (added, changed weights, removed, renamed), the engine applies
them without a restart (``TransformersEngine.apply_adapters``). Any other change (base model, a
server setting, merge_adapter) takes effect at the next restart, which deploy does: the server keeps
serving and says so in its log. A change that cannot be applied (a broken adapter, an unreadable
file) is tried once per content: the server keeps what it serves, and ``/health`` reports it as
``apply_error`` (the settings hash it refused and why) until a later change applies.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping

from .contract import merged_change, settings_digest
from .errors import AdapterConfigError
from .settings import Settings, SettingsError, load_settings, settings_file

log = logging.getLogger("inference_app")

POLL_SECONDS = 1.0
# fields a running server can change without a restart; the rest need one
LIVE_FIELDS = {"adapters", "adapter_versions", "settings_hash"}


def restart_reasons(served: Settings, new: Settings) -> list[str]:
    """What in ``new`` a running server cannot apply live (empty: an adapter-only change)."""
    reasons = [name for name in type(served).model_fields
               if name not in LIVE_FIELDS and getattr(served, name) != getattr(new, name)]
    if "merge_adapter" not in reasons and merged_change(served.merge_adapter, new.merge_adapter,
                                                        (served.adapters, served.adapter_versions),
                                                        (new.adapters, new.adapter_versions)):
        reasons.append("merge_adapter (a merged adapter is part of the base weights)")
    return reasons


async def watch_settings(engine, env: Mapping[str, str] | None = None, interval: float | None = None) -> None:
    """Poll the settings file forever (cancel the task to stop); apply adapter-only changes to ``engine``."""
    env = os.environ if env is None else env
    interval = interval or float(env.get("AITK_SETTINGS_POLL_SECONDS") or POLL_SECONDS)
    path = settings_file(env)
    tried: str | None = None  # the content last tried and not applied: not retried until it changes
    while True:
        await asyncio.sleep(interval)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError:  # gone or unreadable for a moment (a share reconnecting): keep serving what is served
            continue
        digest = settings_digest(data)
        if digest in (engine.settings_hash, tried):
            continue
        tried = digest
        try:
            new = load_settings(env, data)
            if reasons := restart_reasons(engine.settings, new):
                log.info("settings file %s changed (%s): served as before until the next restart", path, ", ".join(reasons))
                continue
            log.info("settings file %s changed: applying the adapters %s live", path, ", ".join(new.adapters) or "(none)")
            await asyncio.to_thread(engine.apply_adapters, new)
        except (SettingsError, AdapterConfigError) as e:
            engine.apply_error = {"settings_hash": digest, "error": str(e)}
            log.error("settings %s not applied, still serving %s: %s", digest, ", ".join(engine.variants()), e)
            continue
        except Exception as e:  # noqa: BLE001 — anything else (out of memory, a bug): said, and the watch goes on
            engine.apply_error = {"settings_hash": digest, "error": f"{type(e).__name__}: {e}"}
            log.exception("settings %s not applied, still serving %s", digest, ", ".join(engine.variants()))
            continue
        log.info("now serving settings %s: %s", digest, ", ".join(engine.variants()))


__all__ = ["POLL_SECONDS", "restart_reasons", "watch_settings"]
