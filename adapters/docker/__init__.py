"""The Docker engine, shared by both runtimes: the connection, inspect data, specs, exec streams, images.

May import adapters' own interfaces, models and errors, and the docker SDK; never bot or commands.
"""
