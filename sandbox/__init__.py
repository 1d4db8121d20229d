"""Stand-ins for the platforms ozonbot talks to, served over real HTTP: the Ozon Seller API
(`sandbox.ozon`), the Telegram Bot API (`sandbox.telegram`) and WeChat (`sandbox.wechat`: WeCom and the
Official Account). Built from the platform docs in docs/reference, used by the tests, `ozonbot demo`
and `ozonbot bench`. Nothing here imports the product (bot/, handlers/, services/)."""
