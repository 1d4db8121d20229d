"""`ozonbot bench`: loopback benchmarks of the real wiring against the Ozon sandbox and a fake Bot API."""
