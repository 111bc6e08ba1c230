# The demo app (tests/apps/demo_flask.py) under uWSGI, for docker/compose.yaml.
# Build context: the workspace root. APP_IMAGE is a Python image on Debian bookworm
# (`cargo xtask image --test` passes a local one made from Debian packages).
ARG APP_IMAGE=python:3.11-slim-bookworm
FROM ${APP_IMAGE}
# uWSGI is built from source by pip: it needs a C compiler and libc headers (the Python
# headers are in the python images, and in the local one).
RUN if ! command -v gcc >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends gcc libc6-dev \
        && rm -rf /var/lib/apt/lists/*; \
    fi
# The demo needs uWSGI and Flask only (the rest of the list is the tests' tools), at the
# versions the tests pin.
COPY tests/apps/requirements.txt /tmp/requirements.txt
RUN grep -E '^(uWSGI|Flask)==' /tmp/requirements.txt > /tmp/demo-requirements.txt \
    && python3 -m venv /venv \
    && /venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        -r /tmp/demo-requirements.txt \
    && rm /tmp/requirements.txt /tmp/demo-requirements.txt
COPY tests/apps/ /app/
# uWSGI runs as its own user; /run/app is where its socket goes (a volume shared with
# ringway's container: a new volume takes this directory's owner).
RUN groupadd --system --gid 10002 app \
    && useradd --system --uid 10002 --gid app --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app \
    && install -d -o app -g app -m 0755 /run/app
USER app:app
ENV PATH=/venv/bin:$PATH
WORKDIR /app
