"""The Ozon Seller API stand-in assembled: world, API, pushes and control API behind one aiohttp server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import ClientSession, web

from .api import Api, Faults, RecordedCall
from .cancellations import Cancellations
from .control import Control
from .methods import Methods
from .push import Push, RecordedPush
from .rating import Rating
from .stocks import Stocks
from .wire import Json
from .world import World, _LabelTask, _Posting, _Seller

log = logging.getLogger(__name__)


class OzonSandbox(World, Api, Methods, Push, Control, Cancellations, Stocks, Rating):
    """The Ozon Seller API stand-in. All state lives on the instance."""

    def __init__(
        self,
        *,
        seed: int = 7,
        label_delay: float = 2.0,
        registration_delay: float = 1.0,
        clock: Callable[[], datetime] | None = None,
        public_url: str | None = None,
        wrap_lists: bool = False,
        rate_limit: int | None = None,
        push_timeout: float = 5.0,
        max_calls: int | None = 200_000,
    ):
        self.seed = seed
        self.label_delay = label_delay
        self.registration_delay = registration_delay
        self._clock = clock or (lambda: datetime.now(UTC))
        self.public_url = public_url.rstrip("/") if public_url else None
        self.wrap_lists = wrap_lists
        self.rate_limit = rate_limit  # None: report Ratelimit-Remaining against 50 rps but never enforce
        self.push_timeout = push_timeout
        self.max_calls = max_calls  # oldest recorded calls are dropped past this (long benchmarks)
        self.faults = Faults()
        self.calls: list[RecordedCall] = []
        self.pushes: list[RecordedPush] = []
        self.base_url: str | None = None

        self._fault_rng = random.Random(seed)
        self._sellers: dict[str, _Seller] = {}
        self._postings: dict[str, _Posting] = {}
        self._awaiting_registration: set[str] = set()
        self._ship_failures: dict[str, int] = {}
        self._label_tasks: dict[int, _LabelTask] = {}
        self._next_task_id = 5819327210248
        self._label_refusals: dict[str, str] = {}  # posting -> why Ozon cannot print its label
        self._windows: dict[str, deque[float]] = {}
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._push_queue: asyncio.Queue[tuple[str, Json]] | None = None
        self._push_task: asyncio.Task[None] | None = None
        self._push_session: ClientSession | None = None
        self._routes: dict[str, Callable[[_Seller, Json], Awaitable[Json] | Json]] = {
            "/v1/roles": self._api_roles,
            "/v2/warehouse/list": self._api_warehouses,
            "/v4/posting/fbs/unfulfilled/list": self._api_unfulfilled,
            "/v4/posting/fbs/list": self._api_list,
            "/v3/posting/fbs/get": self._api_get,
            "/v4/posting/fbs/ship": self._api_ship,
            "/v1/assembly/fbs/product/list": self._api_pick_list,
            "/v3/posting/fbs/package-label/create": self._api_label_create,
            "/v2/posting/fbs/package-label/get": self._api_label_get,
            "/v2/fbs/posting/tracking-number/set": self._api_tracking,
            "/v2/fbs/posting/delivering": self._api_delivering,
            "/v2/fbs/posting/last-mile": self._api_last_mile,
            "/v2/fbs/posting/delivered": self._api_delivered,
            "/v2/conditional-cancellation/list": self._api_cancellation_list,
            "/v2/conditional-cancellation/approve": self._api_cancellation_approve,
            "/v2/conditional-cancellation/reject": self._api_cancellation_reject,
            "/v2/product/info/stocks-by-warehouse/fbs": self._api_stocks_read,
            "/v2/products/stocks": self._api_stocks_set,
            "/v1/rating/index/fbs/info": self._api_rating_info,
            "/v1/rating/index/fbs/posting/list": self._api_rating_postings,
        }
        self._charges = []
        self._cancel_requests = {}
        self._stock = {}
        self._stock_set_at = {}


    # ------------------------------------------------------------------------------------------------
    # HTTP plumbing

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        r = app.router
        r.add_post("/__sandbox__/sellers", self._ctl_sellers)
        r.add_post("/__sandbox__/orders", self._ctl_orders)
        r.add_post("/__sandbox__/postings", self._ctl_add_posting)
        r.add_get("/__sandbox__/postings/{client_id}/{posting_number}", self._ctl_get_posting)
        r.add_get("/__sandbox__/postings/{client_id}", self._ctl_list_postings)
        r.add_post("/__sandbox__/cancel", self._ctl_cancel)
        r.add_post("/__sandbox__/cancellation_requests", self._ctl_cancellation_request)
        r.add_get("/__sandbox__/cancellation_requests", self._ctl_cancellation_requests)
        r.add_get("/__sandbox__/stocks/{client_id}/{sku}/{warehouse_id}", self._ctl_stock)
        r.add_post("/__sandbox__/status", self._ctl_status)
        r.add_post("/__sandbox__/fail_next_ship", self._ctl_fail_next_ship)
        r.add_post("/__sandbox__/faults", self._ctl_faults)
        r.add_get("/__sandbox__/faults", self._ctl_get_faults)
        r.add_post("/__sandbox__/push_url", self._ctl_push_url)
        r.add_get("/__sandbox__/calls", self._ctl_calls)
        r.add_delete("/__sandbox__/calls", self._ctl_clear_calls)
        r.add_get("/__sandbox__/pushes", self._ctl_pushes)
        r.add_get("/__sandbox__/health", self._ctl_health)
        r.add_get("/labels/{name}", self._serve_label)
        r.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("sandbox already started")
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self.make_app(), shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound_port = runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown_host}:{bound_port}"
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()  # releases hanging "timeout" calls
        with contextlib.suppress(TimeoutError):
            await self.flush_pushes(timeout=1.0)
        for task in (self._ticker, self._push_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                    await task
        self._ticker = None
        self._push_task = None
        self._push_queue = None
        if self._push_session is not None:
            await self._push_session.close()
            self._push_session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OzonSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# ----------------------------------------------------------------------------------------------------
# standalone server


async def serve(
    host: str = "127.0.0.1",
    port: int = 8081,
    seed: int = 7,
    client_id: str = "100500",
    api_key: str = "demo-key",
    orders: int = 5,
    label_delay: float = 2.0,
) -> None:
    """Run a sandbox with one seller and ``orders`` new postings until cancelled (Ctrl+C)."""
    sandbox = OzonSandbox(seed=seed, label_delay=label_delay)
    sandbox.add_seller(str(client_id), api_key)
    if orders:
        sandbox.generate_orders(str(client_id), orders)
    url = await sandbox.start(host, port)
    print(
        f"Ozon sandbox on {url}  (Client-Id {client_id}, Api-Key {api_key}, {orders} new postings; "
        f"control API under {url}/__sandbox__/)",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await sandbox.stop()
