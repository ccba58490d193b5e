"""``ComposeRuntime``: the containers of a Compose project on one Docker engine, and the changes made to them.

May import adapters.docker and adapters' interfaces, models and errors; never bot or commands.
"""
