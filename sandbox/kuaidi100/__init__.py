"""A faithful stand-in for Kuaidi100 (快递100) subscribe-and-push tracking, served over real HTTP.

Built from reference/next-features.md §3 and reference/peers.md Appendix C, never from our client:
- ``POST /poll`` (订阅推送): form ``schema=json``, ``param=<JSON>`` with ``company``, ``number``, ``key``
  inside and ``parameters{callbackurl, salt, phone, resultv2, autoCom}``; no request signature.
  Answers ``{"result", "returnCode", "message"}``: 200 accepted, 501 duplicate, 600/601 key unknown or
  expired, 700 bad data, 701 courier unsupported, 702 number not recognised, 500 server error.
- ``POST /poll/query.do`` (实时查询): form ``customer``, ``param``, ``sign = UPPER(MD5(param+key+customer))``.
- Pushes: a form POST to the subscription's ``callbackurl`` with ``param`` (JSON: ``status``,
  ``message``, ``autoCheck``, ``comOld``, ``comNew``, ``lastResult{state, ischeck, com, nu, data[]}``,
  data newest first) and ``sign = UPPER(MD5(param+salt))`` when a salt was given. The receiver must
  answer ``{"result":true,"returnCode":"200"}``; any other answer is pushed again later.
- ``abort`` pushes: "3天查询无记录" (no record three days after subscribing) and "60天无变化".

Fault injection (``Faults``): the whole service down (HTTP 502 from the front), a number of calls
answered with a given returnCode, added latency. A control API under ``/__sandbox__/`` drives it from
another process. Run alone with ``python -m sandbox.kuaidi100 --port 8082``.
"""

from .server import COMPANIES, Faults, Kuaidi100Sandbox, RecordedPush, sign_push, sign_query

__all__ = ["COMPANIES", "Faults", "Kuaidi100Sandbox", "RecordedPush", "sign_push", "sign_query"]
