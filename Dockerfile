# TechBank: the web app (gunicorn) and the Celery worker share this image.
#
#   docker build -t techbank .              (docker-compose.yml builds it for you)
#
# Two stages on the same Debian release as the developers' and CI's machines
# (Debian 12, bookworm), so mysqlclient links against the same MariaDB
# Connector/C (libmariadb3) that the test suite runs against:
# - builder: compilers and client headers; builds every wheel (mysqlclient has
#   no Linux wheels) and installs them into a virtualenv at /opt/venv;
# - runtime: the virtualenv, the code, the collected static files and only the
#   shared library mysqlclient needs at run time (libmariadb.so.3, with its
#   caching_sha2_password plugin for MySQL 8.4's default authentication).
# Runs as an unprivileged user; the code is owned by root and read-only to it.
# No HEALTHCHECK here: the worker runs this image too and serves no HTTP;
# docker-compose.yml gives the web service its own.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# Debian's packages float with the release's security updates, on purpose.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends default-libmysqlclient-dev build-essential pkg-config \
    && rm -rf /var/lib/apt/lists/*

# requirements.txt pins every package (make lock), gunicorn and the Celery
# worker's Redis transport included: the image gets exactly the tested set.
WORKDIR /build
COPY requirements.txt requirements-mysql.txt ./
RUN pip wheel --wheel-dir /wheels -r requirements.txt -r requirements-mysql.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /wheels -r requirements.txt -r requirements-mysql.txt \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/python -c "import MySQLdb, gunicorn, django, kombu.transport.redis"


FROM ${PYTHON_IMAGE} AS runtime

# libmariadb3: libmariadb.so.3, which mysqlclient was linked against in the builder.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 techbank \
    && useradd --system --uid 10001 --gid techbank --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin techbank

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=techbank_site.settings \
    TECHBANK_STATIC_ROOT=/app/staticfiles

WORKDIR /app
COPY . .

# Static files at build time, so whitenoise serves them from STATIC_ROOT. The key
# only lets settings import (it signs nothing here); the real one comes from the
# environment at run time. No database is touched (DATABASE_URL unset: SQLite
# default, never opened).
RUN TECHBANK_SECRET_KEY=collectstatic-build-only-not-a-secret \
    python manage.py collectstatic --no-input --verbosity 0 \
    && python -c "import MySQLdb; print('mysqlclient', MySQLdb.version_info)"

# Numeric, so that a runtime can tell it is not root (e.g. runAsNonRoot).
USER 10001:10001
EXPOSE 8000

# docker-compose.yml runs the migrations first, then this same server.
CMD ["gunicorn", "techbank_site.wsgi:application", \
     "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--timeout", "60", \
     "--access-logfile", "-", "--worker-tmp-dir", "/dev/shm"]
