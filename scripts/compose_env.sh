#!/usr/bin/env bash
# Writes the compose stack's secrets into .env (git-ignored; or the file given) once: a Fernet key
# that encrypts the Airflow connections, a JWT secret for the API server and the admin password.
# An existing file is kept, so the key that encrypted stored connections is never replaced by accident.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
env_file="${1:-.env}"
if [ -f "$env_file" ]; then
  echo "$env_file exists; kept as it is"
  exit 0
fi
umask 077
python3 - > "$env_file" <<'PY'
import base64
import os
import secrets

print(f"AIRFLOW_FERNET_KEY={base64.urlsafe_b64encode(os.urandom(32)).decode()}")
print(f"AIRFLOW_JWT_SECRET={secrets.token_urlsafe(48)}")
print(f"AIRFLOW_ADMIN_PASSWORD={secrets.token_urlsafe(18)}")
PY
echo "wrote $env_file (mode 600); the admin password is in it"
