"""python -m sandbox.ozon --port 8081: a sandbox with one seller and a few new postings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from .server import serve


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.ozon", description="Ozon Seller API sandbox"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--client-id", default="100500")
    parser.add_argument("--api-key", default="demo-key")
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--label-delay", type=float, default=2.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        task = asyncio.ensure_future(
            serve(
                args.host, args.port, args.seed, args.client_id, args.api_key, args.orders, args.label_delay
            )
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # also when SIGINT was inherited as ignored (a background job of a script)
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
