"""The outside world behind small interfaces: container runtimes, HTTP probes, backup stores.

Adapters return the project's own models (``adapters.models``) and raise ``adapters.errors``
exceptions, never SDK objects or SDK exceptions; they import nothing of bot or commands.
"""
