# The twin as a service: `docker build -t twin .` then `docker compose up` (compose.yaml) for the
# demo fab fed over MQTT. Settings are TWIN_* environment variables (docs/api.md).
FROM python:3.11-slim

# pybullet and open3d load libGL/libgomp at import; libusb for open3d. No compiler: all wheels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libgomp1 libusb-1.0-0 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin twin \
    && mkdir /data && chown twin:twin /data

# The source only to build the wheel; twin/scenes and twin/notebooks link to scenes/ and
# notebooks/, so those come too. The installed package carries them (package data).
COPY pyproject.toml README.md /src/
COPY twin /src/twin
COPY services /src/services
COPY scenes /src/scenes
COPY notebooks /src/notebooks
ARG EXTRAS=api,live,physics,kernel
RUN pip install --no-cache-dir "/src[${EXTRAS}]" && rm -rf /src

USER twin
WORKDIR /data
ENV TWIN_HOST=0.0.0.0 \
    TWIN_PORT=8000 \
    TWIN_STORE=/data/events.db \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8000

# readiness: /ready answers 200 while ingest runs, the store is writable and the MQTT broker
# (when configured) is connected; 503 otherwise (urlopen raises, the check fails)
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD python -c "import os, sys, urllib.request; u = f'http://127.0.0.1:{os.environ.get(\"TWIN_PORT\", \"8000\")}/ready'; sys.exit(0 if urllib.request.urlopen(u, timeout=4).status == 200 else 1)"

ENTRYPOINT ["twin"]
CMD ["serve"]
