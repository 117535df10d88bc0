# syntax=docker/dockerfile:1
# jobfleet: one image for every role — `api` (default), `worker`, `exporter`, `status`, `dlq ...` (the jobfleet CLI).
#   docker build -t jobfleet .                        (or: make compose-up, which builds it)
#   docker run --rm -e REDIS_URL=redis://redis:6379/0 -p 8000:8000 jobfleet

# --- build: a virtualenv with jobfleet and its dependencies (compilers stay in this stage) --------------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/jobfleet
ENV PATH=/opt/jobfleet/bin:$PATH
WORKDIR /src
# Dependencies first, so a source change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir app workers middleware jobfleet \
    && touch app/__init__.py workers/__init__.py middleware/__init__.py jobfleet/__init__.py \
    && pip install . \
    && pip uninstall -y jobfleet
COPY app ./app
COPY workers ./workers
COPY middleware ./middleware
COPY jobfleet ./jobfleet
RUN pip install --no-deps . && python -m compileall -q /opt/jobfleet/lib

# --- runtime: slim, no compilers, non-root ----------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 jobfleet \
    && useradd --system --uid 10001 --gid jobfleet --home-dir /var/lib/jobfleet --shell /usr/sbin/nologin jobfleet \
    && install -d -o jobfleet -g jobfleet /var/lib/jobfleet
COPY --from=build /opt/jobfleet /opt/jobfleet
ENV PATH=/opt/jobfleet/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    JOBFLEET_DATA_DIR=/var/lib/jobfleet \
    JOBFLEET_REPORT_DIR=/var/lib/jobfleet/reports \
    JOBFLEET_API_HOST=0.0.0.0 \
    JOBFLEET_METRICS_HOST=0.0.0.0
WORKDIR /var/lib/jobfleet
USER 10001:10001
# API, worker metrics, queue exporter
EXPOSE 8000 9191 9180
# The API's liveness (the default command). Worker and exporter containers override it (deploy/compose.yaml).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('JOBFLEET_API_PORT', '8000') + '/healthz', timeout=2)"]
ENTRYPOINT ["jobfleet"]
CMD ["api"]
