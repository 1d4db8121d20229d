"""``python -m sandbox.kuaidi100 --port 8082 --key demo-kd100-key --customer DEMOCUSTOMER``"""

from __future__ import annotations

import argparse
import asyncio

from .server import Kuaidi100Sandbox


async def _serve(host: str, port: int, key: str, customer: str) -> None:
    box = Kuaidi100Sandbox()
    box.add_account(key, customer)
    url = await box.start(host, port)
    print(f"Kuaidi100 stand-in on {url}  (key {key}, customer {customer}; control API under "
          f"{url}/__sandbox__/)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await box.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.kuaidi100")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--key", default="demo-kd100-key")
    parser.add_argument("--customer", default="DEMOCUSTOMER")
    args = parser.parse_args()
    asyncio.run(_serve(args.host, args.port, args.key, args.customer))


if __name__ == "__main__":
    main()
