"""The Slack door: the Bolt app, Block Kit rendering, the HTTP server, Socket Mode.

This package is the only place that imports ``slack_bolt`` / ``slack_sdk``.
"""
