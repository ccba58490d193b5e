"""``HttpProbe``: HTTP health checks on httpx.

May import adapters' interfaces, models and errors, and httpx; never bot or commands.
"""
