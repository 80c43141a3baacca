#!/usr/bin/env bash
# The OrderHub image's entrypoint, after the conventions of Airflow's official
# image (its /entrypoint; docs: "docker-stack/entrypoint"):
#
#   api-server | scheduler | dag-processor | triggerer | celery ... | db ... | <any airflow command>
#                     -> `airflow <command> ...`, once the metadata database answers
#   init              -> the airflow-init service: migrate the metadata database, bring the
#                        warehouse's raw and ops tables up to date, grant the BI role, and
#                        parse the dbt project (the DAGs render from its manifest)
#   orderhub ...      -> the OrderHub CLI (intake, stream, sandbox serve, check, status)
#   bash | python | sh | an absolute path ...
#                     -> run as given
#
# As in the official image, CONNECTION_CHECK_MAX_COUNT (default 20) and
# CONNECTION_CHECK_SLEEP_TIME (default 3 s) bound the wait for the metadata
# database; 0 skips it. The tests run this script on the host, with the same
# environment the compose file gives each container (tests/test_compose.py).
set -euo pipefail

ORDERHUB_ROOT="${ORDERHUB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

fail() {
    echo "orderhub entrypoint: $*" >&2
    exit 64
}

wait_for_metadata_db() {
    local count="${CONNECTION_CHECK_MAX_COUNT:-20}" pause="${CONNECTION_CHECK_SLEEP_TIME:-3}"
    [[ "${count}" -eq 0 ]] && return 0
    local attempt
    for ((attempt = 1; attempt <= count; attempt++)); do
        if airflow db check >/dev/null 2>&1; then
            return 0
        fi
        echo "waiting for the metadata database (${attempt}/${count})" >&2
        sleep "${pause}"
    done
    fail "the metadata database did not answer after ${count} tries" \
         "(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN; is the postgres service healthy?)"
}

# The executor and the compose profile must agree: a CeleryExecutor without
# the celery profile has no broker and no worker, and a worker under the
# LocalExecutor would never be sent a task.
check_executor() {
    local executor="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
    local profiles=",${ORDERHUB_COMPOSE_PROFILES:-},"
    if [[ "${executor}" == *CeleryExecutor* && "${profiles}" != *,celery,* ]]; then
        fail "AIRFLOW__CORE__EXECUTOR is CeleryExecutor but the celery profile is off:" \
             "set COMPOSE_PROFILES=celery in .env (it starts redis and the workers)"
    fi
    if [[ "${executor}" != *CeleryExecutor* && "${profiles}" == *,celery,* ]]; then
        fail "the celery profile is on but the executor is ${executor}:" \
             "set AIRFLOW_EXECUTOR=CeleryExecutor in .env"
    fi
}

# The API server's login (Airflow's simple auth manager): the user named in
# _AIRFLOW_WWW_USER_USERNAME, as admin, with the password from .env. Without
# a password, Airflow generates one into the passwords file.
write_login() {
    local user="${_AIRFLOW_WWW_USER_USERNAME:-admin}"
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${user}:admin"
    if [[ -n "${_AIRFLOW_WWW_USER_PASSWORD:-}" ]]; then
        local file="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-${AIRFLOW_HOME}/simple_auth_manager_passwords.json.generated}"
        mkdir -p "$(dirname "${file}")"
        python - "${file}" "${user}" <<'PY'
import json, os, sys
path, user = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as out:
    json.dump({user: os.environ["_AIRFLOW_WWW_USER_PASSWORD"]}, out)
PY
    fi
}

init() {
    wait_for_metadata_db
    airflow db migrate
    orderhub db migrate
    python - <<'PY'
from orderhub.landing import connect, ensure_bi_role
from orderhub.transform import ensure_manifest

with connect() as conn:
    print("BI role:", "granted" if ensure_bi_role(conn) else "missing (docs/bi.md)")
print("dbt manifest:", ensure_manifest())
PY
}

if [[ $# -eq 0 ]]; then
    set -- --help
fi

case "$1" in
    init)
        check_executor
        init
        ;;
    orderhub)
        shift
        exec orderhub "$@"
        ;;
    bash | sh | python | python3 | /*)
        exec "$@"
        ;;
    --help | -h | help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
        ;;
    *)
        check_executor
        if [[ "$1" == "celery" && "${AIRFLOW__CORE__EXECUTOR:-}" != *CeleryExecutor* ]]; then
            fail "a celery worker needs AIRFLOW__CORE__EXECUTOR=CeleryExecutor"
        fi
        [[ "$1" == "api-server" ]] && write_login
        wait_for_metadata_db
        cd "${ORDERHUB_ROOT}"
        exec airflow "$@"
        ;;
esac
