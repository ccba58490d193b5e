"""The doors without Slack: the command line, the local console, ``opsbot serve`` and the scheduler.

May import everything below them (bot.slack, bot.render, bot.core, commands, bot.config, adapters).
"""
