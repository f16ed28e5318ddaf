"""Entry point of a simulator run in its own process by ``Simulator(process=True)``.

Protocol: the parent writes the config as one JSON line on stdin; the child answers
``{"port": N}`` on stdout once it listens, then serves until its stdin closes (the parent
stopped it or died).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading

from llm_api_client.simulator.background import config_from_json
from llm_api_client.simulator.server import serve_until


async def _main() -> None:
    config = config_from_json(sys.stdin.readline())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()  # returns at EOF
        loop.call_soon_threadsafe(stop.set)

    def ready(port: int) -> None:
        print(json.dumps({"port": port}), flush=True)
        threading.Thread(target=wait_for_eof, name="stdin-watch", daemon=True).start()

    await serve_until(config, stop, ready)


if __name__ == "__main__":
    asyncio.run(_main())
