"""The SPICE protocol as sans-IO state machines, and the asyncio server that feeds them."""
