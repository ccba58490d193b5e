# opsbot as a container. The bot talks to Docker through the socket (or DOCKER_HOST forms in ops.yml),
# keeps its state in /data, and reads its guide from /config/ops.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY adapters ./adapters
RUN pip install --no-cache-dir . && useradd --system --home /data opsbot && mkdir -p /data /config \
    && chown opsbot /data
USER opsbot
ENV OPSBOT_CONFIG=/config/ops.yml OPSBOT_DB=/data/opsbot.db PORT=3000
EXPOSE 3000
ENTRYPOINT ["opsbot"]
CMD ["serve"]
