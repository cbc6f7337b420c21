# wine_api's image: `wine-api serve` on 0.0.0.0:8080 (KServe's port), as a fixed non-root uid, read-only root welcome.
#   docker build -t wine-api .          (or podman build)
#   docker run -p 8080:8080 --read-only --tmpfs /tmp wine-api
# BASE_IMAGE is any image with python3 (3.11+) and its venv module: the official slim image by default.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# a CA bundle for pip behind a TLS-intercepting proxy (a build-time mount); unset: pip's own bundle
ARG PIP_CERT
WORKDIR /src
COPY . .
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip wheel --no-cache-dir --no-deps ${PIP_CERT:+--cert "$PIP_CERT"} --wheel-dir /wheels .

FROM ${BASE_IMAGE}
ARG PIP_CERT
COPY --from=build /wheels /wheels
RUN python3 -m venv /opt/wine-api \
 && /opt/wine-api/bin/pip install --no-cache-dir ${PIP_CERT:+--cert "$PIP_CERT"} /wheels/*.whl \
 && rm -rf /wheels
# settings as environment variables (see `wine-api serve --help` and the README); a store mounted at
# WINE_API_MODEL_DIR is followed as its CURRENT pointer moves; /tmp must be writable (the workers' metrics
# live there): a tmpfs or emptyDir when the root is read-only. The prediction log
# goes beside a mounted store (predictions.sqlite), or where WINE_API_PREDICTION_LOG says (a PostgreSQL URL for several
# hosts, "off" for none); with the bundled model and no setting, under $HOME=/tmp, so it lasts as long as the container
ENV PATH=/opt/wine-api/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WINE_API_HOST=0.0.0.0 \
    WINE_API_PORT=8080
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('WINE_API_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["wine-api"]
CMD ["serve"]
