# kundlinow: one image for the server and its CLI (migrate, seed-demo, admin create, billing …).
# Build: docker build -t kundlinow .   Run: see docker-compose.yml.

# --- build: wheels for the app and every dependency --------------------------------------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libffi-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY setup.cfg pyproject.toml README.md LICENSE ./
COPY kundlinow ./kundlinow
COPY core ./core
COPY api ./api
COPY billing ./billing
COPY media ./media
COPY recording ./recording
COPY signalling ./signalling
COPY turn ./turn
COPY astrology ./astrology
COPY birth ./birth
RUN pip wheel --wheel-dir /wheels .

# --- runtime: slim, no compilers, non-root ----------------------------------------------------
FROM python:3.11-slim AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/kundlinow --create-home kundlinow
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels kundlinow && rm -rf /wheels
COPY client /srv/kundlinow/client
ENV ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    LOG_FORMAT=json \
    CLIENT_DIR=/srv/kundlinow/client \
    EMBEDDED_PG_DIR=/var/lib/kundlinow/pg
USER kundlinow
WORKDIR /var/lib/kundlinow
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["kundlinow", "serve"]
