"""``TlsInspector``: TLS certificates read with the standard library's ``ssl`` (no other dependency).

May import adapters' interfaces, models and errors; never bot or commands.
"""
