"""Start `ppp label serve` as a user would (a process, port 0) and fetch over HTTP."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from pathlib import Path


def serve_and_fetch(ppp: list[str], cwd: Path, env: dict, voc_id: str) -> tuple[bytes, bytes]:
    """``ppp label serve data --split val`` in ``cwd`` (``ppp``: the command's argv prefix);
    returns the page and the JPEG of ``voc_id`` as served."""
    server = subprocess.Popen([*ppp, "label", "serve", "data", "--split", "val", "--port", "0"],
                              cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        line = server.stdout.readline()
        url = re.search(r"http://\S+/", line)
        assert url, line + server.stderr.read()
        with urllib.request.urlopen(url.group(0), timeout=60) as reply:
            page = reply.read()
        with urllib.request.urlopen(f"{url.group(0)}image/{voc_id}", timeout=60) as reply:
            assert reply.status == 200
            image = reply.read()
    finally:
        server.terminate()
        server.wait(timeout=60)
    return page, image
