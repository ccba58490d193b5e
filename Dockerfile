# opsbot as a container (README, "Run it in production"): a slim image with a virtual environment,
# run as a non-root user. The bot reads its guide from /config/ops.yml, keeps its SQLite state in /data
# (a volume), reaches Docker through the socket (or the DOCKER_HOST forms of ops.yml) and answers
# GET /health on $PORT, which the HEALTHCHECK asks.
#
#   docker build -t opsbot .
#   offline, or when pip inside the build cannot reach the index: a wheelhouse from a machine that can
#     pip wheel . setuptools -w wheels
#     docker build --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/src/wheels -t opsbot .
#   another base (any with python3 >= 3.11 and its venv module): --build-arg BASE=debian:bookworm-...
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
# pip reads these from the environment: empty, it uses the index as usual
ARG PIP_NO_INDEX=
ARG PIP_FIND_LINKS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# .dockerignore lets through only the sources, pyproject.toml, README.md and wheels/
COPY . /src
RUN python3 -m venv /opt/opsbot \
    && /opt/opsbot/bin/pip install --quiet /src \
    && /opt/opsbot/bin/pip uninstall --quiet --yes pip setuptools

FROM ${BASE}
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin opsbot \
    && mkdir -p /data /config && chown opsbot:opsbot /data
COPY --from=build /opt/opsbot /opt/opsbot
ENV PATH=/opt/opsbot/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    OPSBOT_CONFIG=/config/ops.yml OPSBOT_DB=/data/opsbot.db PORT=3000
USER opsbot
WORKDIR /data
EXPOSE 3000
# SIGTERM drains: running procedures get OPSBOT_DRAIN_SECONDS (60) to finish; give `docker stop` more
# (docker stop -t 90, Compose's stop_grace_period: 90s), or its default 10 s cuts the drain short
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '3000'), timeout=4)"]
ENTRYPOINT ["opsbot"]
CMD ["serve"]
