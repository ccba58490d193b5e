"""``SwarmRuntime``: the services of a Docker Swarm stack, read from tasks and changed by service updates.

May import adapters.docker and adapters' interfaces, models and errors; never bot or commands.
"""
