# The dockwright daemon, to run next to a Docker engine:
#   docker build -t dockwright .
#   docker run -d --name dockwright -v /var/run/docker.sock:/var/run/docker.sock \
#     -v dockwright-data:/data dockwright
# NOTE: this image is not built by the test suite, because the machines that run it cannot
# reach Docker Hub for the python base image.
FROM python:3.11-slim

RUN useradd --system --home-dir /data --create-home dockwright
WORKDIR /app
COPY pyproject.toml README.md ./
COPY controller ./controller
RUN pip install --no-cache-dir '.[postgres]'

# The daemon talks to the engine through the mounted socket; it needs the socket's group,
# so it runs as root unless the operator maps that group in (`--group-add`).
ENV DOCKWRIGHT_DATABASE_URL=sqlite:////data/dockwright.db \
    DOCKWRIGHT_LOG_FORMAT=json
VOLUME ["/data"]
WORKDIR /data
ENTRYPOINT ["dockwright"]
CMD ["run"]
