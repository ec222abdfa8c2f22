#!/usr/bin/env bash
# Print the environment `make test` runs with: PostgreSQL and Redis on 127.0.0.1 when they
# answer, the embedded defaults (SQLite, filesystem broker) otherwise. Says which on stderr.
set -u
if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/vendo}"
  db="PostgreSQL on 127.0.0.1:5432"
else
  echo "unset DATABASE_URL"
  db="SQLite (embedded default)"
fi
if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "export CELERY_BROKER_URL=${TEST_BROKER_URL:-redis://127.0.0.1:6379/14}"
  broker="Redis on 127.0.0.1:6379"
else
  echo "unset CELERY_BROKER_URL"
  # Apart from `make run`'s broker, so a test worker never takes the dev server's messages.
  echo "export BROKER_DIR=var/test-broker"
  broker="the filesystem broker (embedded default)"
fi
echo "make test: database $db, broker $broker" >&2
