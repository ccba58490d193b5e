"""The one request path and its state: engine, grammar, access, changes, approvals, audit, the database.

May import commands, bot.config and adapters; never a door (bot.doors, bot.slack) or a renderer (bot.render).
"""
