"""The outside world behind small interfaces: container runtimes, HTTP probes, backup stores.

Adapters return the project's own models (``adapters.models``) and raise ``adapters.errors``
exceptions; they never leak SDK objects or SDK exceptions to the layers above.
"""
