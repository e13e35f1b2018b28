# tokengate: the gateway as a container image.
#
#   docker build -t tokengate:0.1.0 .
#   docker run --rm -e TOKENGATE_MASTER_KEY=... -e TOKENGATE_STORE_URL=redis://... \
#              -e TOKENGATE_UPSTREAM_URL=http://... -p 8080:8080 tokengate:0.1.0
#
# Build stage: install the package and its runtime dependencies (no test extra)
# into a virtualenv; every dependency ships wheels, so no compiler is needed.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY gateway ./gateway
RUN python -m venv /opt/tokengate \
 && /opt/tokengate/bin/pip install . \
 && /opt/tokengate/bin/tokengate --help > /dev/null

# Runtime stage: the virtualenv only, run as an unprivileged user.
FROM python:3.11-slim
RUN groupadd --system --gid 10001 tokengate \
 && useradd --system --uid 10001 --gid tokengate --no-create-home --shell /usr/sbin/nologin tokengate
COPY --from=build /opt/tokengate /opt/tokengate
ENV PATH=/opt/tokengate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TOKENGATE_PROXY_LISTEN=0.0.0.0:8080 \
    TOKENGATE_ADMIN_LISTEN=0.0.0.0:9090
# The admin listener binds every interface inside the container (above) so that
# the HEALTHCHECK, kubelet probes and Prometheus reach it; publish it only to
# trusted networks (compose maps it to 127.0.0.1; the Kubernetes Service leaves it out).
USER 10001:10001
EXPOSE 8080 9090
# The slim image has no curl; the standard library does the probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9090/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["tokengate"]
CMD ["serve"]
