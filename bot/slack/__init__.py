"""The Slack door: the Bolt app, Block Kit rendering, the HTTP server, Socket Mode, user groups.

The only package that imports ``slack_bolt`` / ``slack_sdk``; may import bot.render, bot.core, commands,
bot.config and adapters, never bot.doors.
"""
