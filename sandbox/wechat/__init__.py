"""WeChat stand-ins: WeCom's API (wecom.py), its callbacks (callbacks.py), the Official Account
(official.py) and an independent implementation of WeChat's message crypto (crypto.py)."""
