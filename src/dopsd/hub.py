"""Whether the Hugging Face hub can be reached, asked once and quickly: without it a missing model or dataset would
cost a user half a minute of retry messages before the same answer."""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse


@functools.lru_cache(maxsize=1)
def hub_unreachable() -> str | None:
    """Why the hub cannot be reached (offline mode, or no connection within 3 s), or ``None`` when it can (or when
    a proxy is configured, which only the HTTP client knows how to use)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as error:
        return f"{host} cannot be reached ({error.strerror or error})"
    return None


def cached_on_disk(repo_id: str, filename: str = "config.json") -> bool:
    """Whether the hub cache already holds ``filename`` of model ``repo_id``."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(repo_id, filename), str)
