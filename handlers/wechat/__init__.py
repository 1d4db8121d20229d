"""WeChat channels: the WeCom self-built app (work), the Official Account (official), the group robot."""
