"""Plain-text rendering of replies (console, command line) from the commands' typed results.

May import bot.core, commands and bot.config; never a door or slack_bolt / slack_sdk.
"""
