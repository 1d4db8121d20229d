"""The Ozon sandbox in a process of its own, so its CPU and memory never count against the bot's.

`python -m bench.sandbox_proc --sellers N --orders K` seeds N sellers with K new postings each, prints
its base URL on one line and serves until its stdin closes. The bench drives it through the sandbox's
own control API (`/__sandbox__/...`) and the Ozon API, both over loopback HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiohttp

FIRST_CLIENT_ID = 1_000_000


def client_id(index: int) -> str:
    return str(FIRST_CLIENT_ID + index)


def api_key(index: int) -> str:
    return f"bench-key-{index:06d}-0123456789"


class SandboxControl:
    """Talks to a sandbox process: its control API and the call log."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession):
        self.base_url = base_url
        self._session = session

    async def _post(self, path: str, body: dict) -> Any:
        async with self._session.post(f"{self.base_url}/__sandbox__/{path}", json=body) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"sandbox {path}: {resp.status} {data}")
            return data

    async def _get(self, path: str, **params: str) -> Any:
        async with self._session.get(f"{self.base_url}/__sandbox__/{path}", params=params) as resp:
            return await resp.json()

    async def orders(self, index: int, count: int = 1, flows: list[str] | None = None,
                     due_in: float | None = None) -> list[dict]:
        return await self._post("orders", {"client_id": client_id(index), "count": count, "flows": flows,
                                           "due_in_seconds": due_in})

    async def push_url(self, index: int, url: str | None) -> None:
        await self._post("push_url", {"client_id": client_id(index), "url": url})

    async def faults(self, **values: Any) -> None:
        await self._post("faults", values)

    async def calls(self) -> list[dict]:
        return await self._get("calls")

    async def clear_calls(self) -> None:
        async with self._session.delete(f"{self.base_url}/__sandbox__/calls") as resp:
            await resp.read()

    async def pushes(self) -> list[dict]:
        return await self._get("pushes")


@asynccontextmanager
async def sandbox_process(sellers: int, orders: int = 0, *, label_delay: float = 0.3,
                          registration_delay: float = 0.3, flows: str = ""):
    """Starts the sandbox process and yields a SandboxControl; stops it on exit."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.sandbox_proc", "--sellers", str(sellers), "--orders", str(orders),
        "--label-delay", str(label_delay), "--registration-delay", str(registration_delay), "--flows", flows,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=300)
        if not line:
            raise RuntimeError("the sandbox process exited before it was ready")
        base_url = json.loads(line)["base_url"]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            yield SandboxControl(base_url, session)
    finally:
        proc.stdin.close()
        with suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _serve(args: argparse.Namespace) -> None:
    from sandbox.ozon import OzonSandbox

    # max_calls: the 10,000-seller cycles must be countable in full
    sandbox = OzonSandbox(seed=args.seed, label_delay=args.label_delay, registration_delay=args.registration_delay,
                          max_calls=1_000_000)
    flows = [f for f in args.flows.split(",") if f] or None
    for index in range(args.sellers):
        sandbox.add_seller(client_id(index), api_key(index))
        if args.orders:
            sandbox.generate_orders(client_id(index), args.orders, flows=flows)
    url = await sandbox.start("127.0.0.1", 0)
    print(json.dumps({"base_url": url}), flush=True)
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, sys.stdin.read)  # until the bench closes our stdin
    finally:
        await sandbox.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_proc")
    parser.add_argument("--sellers", type=int, required=True)
    parser.add_argument("--orders", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--label-delay", type=float, default=0.3)
    parser.add_argument("--registration-delay", type=float, default=0.3)
    parser.add_argument("--flows", default="")
    asyncio.run(_serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
