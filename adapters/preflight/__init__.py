"""Preflight probes of the outside parties, for ``opsbot check --live`` (guide 2 and 3.1).

Each probe measures one thing (an engine's version and size, a TCP port, a TLS certificate, an SMTP
greeting, Slack's ``auth.test``, Prometheus' query API, S3 credentials, a command's output on this
host) and returns the facts as a model, or raises an ``adapters.errors`` exception with one clear
line. Judging the facts against ops.yml's ``requirements`` is the bot's work (``bot.core.preflight``).

May import adapters' interfaces, models, errors and ``adapters.docker``, and docker, httpx, boto3;
never bot or commands.
"""
