"""A faithful stand-in for the Ozon Seller API (there is no real sandbox), served over real HTTP.

Used by the tests, the demo and the benchmarks. It enforces the posting state machine, the payload
shapes and the rpcStatus error bodies of reference/ozon-seller-api.md, and can inject latency, 429s,
5xx, "Circle is open" and hanging requests. A JSON control API under ``/__sandbox__/`` lets another
process drive it. Run alone with ``python -m sandbox.ozon --port 8081``.

Layout: world.py (sellers, postings, transitions), api.py (dispatch, auth, rate limit, faults),
methods.py (the `_api_*` handlers), push.py, control.py (``/__sandbox__/``), catalogue.py and orders.py
(products and the order generator), states.py (status vocabulary), label_pdf.py, server.py (assembly).
"""

from .api import ApiError, Faults, RecordedCall
from .push import RecordedPush
from .server import OzonSandbox, serve

__all__ = ["ApiError", "Faults", "OzonSandbox", "RecordedCall", "RecordedPush", "serve"]
