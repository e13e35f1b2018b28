"""Pure decisions: no I/O, no clock reads, no aiohttp, no redis.

Everything in this package takes ``now`` as an argument and returns values.
It is tested synchronously, table-driven, without an event loop.
"""
