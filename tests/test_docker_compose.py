"""The docker-compose deployment, checked without Docker: parse the files and check they agree with the repo.

No Docker engine and no network: docker-compose.yml, the Dockerfile, .dockerignore, .env.example and
docker/ are read as text and checked for the mistakes that otherwise only show up at `docker compose up`.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

AIRFLOW_SERVICES = ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer"]
CORE_SERVICES = ["warehouse", *AIRFLOW_SERVICES]
CELERY_SERVICES = ["redis", "airflow-worker"]
ONE_OFF_SERVICES = {"airflow-init"}
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# --- Compose variable interpolation (the subset compose supports: $VAR, ${VAR}, :-, -, :?, ?, :+, +) ---

class MissingVariable(Exception):
    pass


VARIABLE_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)")
EXPRESSION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", re.DOTALL)


def referenced_variables(text: str) -> set[str]:
    """Every variable named in text, nested defaults included; `$$` is an escaped dollar."""
    return {m.group(1) or m.group(2) for m in VARIABLE_REFERENCE.finditer(text) if m.group(0) != "$$"}


def interpolate(text: str, env: dict[str, str]) -> str:
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_expand(text[i + 2:end], env))
            i = end + 1
        elif text[i] == "$" and (m := re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i + 1:])):
            out.append(env.get(m.group(0), ""))
            i += 1 + m.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for j in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return j
    raise ValueError(f"unclosed ${{ in {text!r}")


def _expand(expression: str, env: dict[str, str]) -> str:
    match = EXPRESSION.fullmatch(expression)
    assert match, f"not a valid compose variable expression: ${{{expression}}}"
    name, operator, argument = match.groups()
    value = env.get(name)
    if operator is None:
        return value or ""
    unset = value is None or (operator.startswith(":") and value == "")
    if operator.endswith("-"):
        return interpolate(argument, env) if unset else value
    if operator.endswith("?"):
        if unset:
            raise MissingVariable(f"{name}: {interpolate(argument, env)}")
        return value
    return "" if unset else interpolate(argument, env)  # "+"


def resolve(node, env: dict[str, str]):
    """The compose document as compose sees it with `env` as the .env file."""
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def strings_in(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from strings_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings_in(value)
    elif isinstance(node, str):
        yield node


# --- Fixtures -----------------------------------------------------------------------------------

def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert "=" in line, f"{path.name}:{number}: expected KEY=value, got {line!r}"
        key, value = line.split("=", 1)
        assert key not in env, f"{path.name}:{number}: {key} is listed twice"
        env[key] = value
    return env


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def compose(raw, env_example) -> dict:
    """What `cp .env.example .env && docker compose config` would see."""
    return resolve(raw, env_example)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def healthcheck_text(service: dict) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return " ".join(test) if isinstance(test, list) else test


def command_text(service: dict) -> str:
    command = service.get("command") or []
    return " ".join(command) if isinstance(command, list) else command


def volume_mounts(service: dict) -> list[tuple[str, str, str]]:
    """(type, source, target) of every volume, short or long syntax."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        else:
            kind, source, target = volume.get("type", "volume"), volume.get("source", ""), volume["target"]
        mounts.append((kind, source, target))
    return mounts


# --- Services ------------------------------------------------------------------------------------

def test_required_services_exist(services):
    missing = [name for name in CORE_SERVICES + CELERY_SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks the services {missing}"


def test_airflow_services_share_one_image_built_from_the_dockerfile(raw, services):
    assert "x-airflow-common" in raw, "the shared Airflow config belongs in the x-airflow-common anchor"
    airflow = [name for name in services if name.startswith("airflow-")]
    images = {services[name].get("image") for name in airflow}
    builds = {repr(services[name].get("build")) for name in airflow}
    assert len(images) == 1 and None not in images, f"Airflow services use different images: {images}"
    assert len(builds) == 1, f"Airflow services are built differently: {builds}"


def test_build_context_and_dockerfile_exist(services):
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert built, "no service is built from the repo's Dockerfile"
    for name, build in built.items():
        build = {"context": build} if isinstance(build, str) else build
        context = (ROOT / build.get("context", ".")).resolve()
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"


def test_every_server_has_a_healthcheck(services):
    for name, service in services.items():
        if name in ONE_OFF_SERVICES:
            continue
        healthcheck = service.get("healthcheck") or {}
        assert healthcheck.get("test") and not healthcheck.get("disable"), f"{name} has no healthcheck"
    assert "/api/v2/monitor/health" in healthcheck_text(services["airflow-apiserver"])
    assert "pg_isready" in healthcheck_text(services["warehouse"])


def test_warehouse_is_postgres_16_with_a_volume_and_init_sql(services):
    warehouse = services["warehouse"]
    assert warehouse["image"] == "postgres:16"
    mounts = volume_mounts(warehouse)
    assert ("volume", "warehouse-data", "/var/lib/postgresql/data") in mounts
    init = [source for kind, source, target in mounts if target.startswith("/docker-entrypoint-initdb.d")]
    assert init and all(source.startswith("./docker/") for source in init), \
        "the warehouse's init scripts should be mounted from docker/ into /docker-entrypoint-initdb.d"


def test_init_sql_creates_the_databases_and_an_airflow_role():
    sql = re.sub(r"--.*", "", (ROOT / "docker" / "init-warehouse.sql").read_text().lower())
    for database in ("warehouse", "crm", "airflow"):
        assert re.search(rf"create database {database}\b", sql), f"init-warehouse.sql does not create {database}"
    assert re.search(r'create role :"airflow_user"', sql)
    assert re.search(r'create database airflow owner :"airflow_user"', sql)
    assert "superuser" not in sql, "the pipeline's and Airflow's roles must not be superusers"


def test_apiserver_serves_the_ui_on_8080(services):
    apiserver = services["airflow-apiserver"]
    assert command_text(apiserver) == "airflow api-server"
    assert any(str(port).endswith(":8080") for port in apiserver.get("ports", [])), "port 8080 is not published"


def test_airflow_init_migrates_and_creates_the_admin_once(services):
    init = services["airflow-init"]
    assert init.get("restart", "no") == "no", "airflow-init is a one-off: it must not be restarted"
    script_in_image = command_text(init).split()[-1]
    assert script_in_image == "/opt/airflow/docker/airflow-init.sh"
    script = (ROOT / "docker" / "airflow-init.sh").read_text()
    assert "airflow db migrate" in script
    assert "airflow users create" in script


def test_depends_on_waits_for_health_and_completion(services):
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on needs the long form with a condition"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on an unknown service {dependency}"
            assert spec.get("condition") in DEPENDS_ON_CONDITIONS, f"{name} -> {dependency}: no condition"
    for name in AIRFLOW_SERVICES + ["airflow-worker"]:
        depends_on = services[name]["depends_on"]
        assert depends_on["warehouse"]["condition"] == "service_healthy", name
        if name not in ONE_OFF_SERVICES:
            assert depends_on["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["airflow-worker"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_local_executor_by_default_and_a_celery_profile(services):
    for name in CORE_SERVICES:
        assert not services[name].get("profiles"), f"{name} must start without a profile"
    for name in CELERY_SERVICES:
        assert services[name].get("profiles") == ["celery"], f"{name} belongs to the celery profile"
    for name in AIRFLOW_SERVICES:
        assert environment(services[name])["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
    worker = services["airflow-worker"]
    assert "airflow celery worker" in command_text(worker)
    env = environment(worker)
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")


def test_worker_can_be_scaled(services):
    worker = services["airflow-worker"]
    assert "container_name" not in worker and not worker.get("ports"), \
        "a container_name or published port stops `--scale airflow-worker=N`"


def test_pipeline_and_airflow_point_at_the_warehouse_service(services, env_example):
    env = environment(services["airflow-scheduler"])
    expected = {
        "WAREHOUSE_DSN": (env_example["WAREHOUSE_DB_USER"], "warehouse"),
        "CRM_SOURCE_DSN": (env_example["WAREHOUSE_DB_USER"], "crm"),
        "AIRFLOW_METADATA_DSN": (env_example["AIRFLOW_DB_USER"], "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (env_example["AIRFLOW_DB_USER"], "airflow"),
    }
    for key, (user, database) in expected.items():
        url = urlsplit(env[key])
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "warehouse", 5432), f"{key}={env[key]}"
        assert (url.username, url.path) == (user, f"/{database}"), f"{key}={env[key]}"
    assert env_example["AIRFLOW_DB_USER"] != env_example["WAREHOUSE_DB_USER"], "Airflow needs its own role"


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for kind, source, _target in volume_mounts(service):
            if kind == "volume":
                assert source in declared, f"{name} mounts volume {source!r}, not declared under volumes:"


def test_files_mounted_from_the_repo_exist(services):
    for name, service in services.items():
        for kind, source, target in volume_mounts(service):
            if kind == "bind":
                assert not source.startswith(("/", "~")), f"{name}: {source} is outside the repo"
                assert (ROOT / source).exists(), f"{name} mounts {source} into {target}, which does not exist"


# --- Settings -----------------------------------------------------------------------------------

def test_every_variable_is_listed_in_env_example(raw, env_example):
    used = set().union(*(referenced_variables(s) for s in strings_in(raw)))
    assert not used - set(env_example), f".env.example lacks {sorted(used - set(env_example))}"
    assert not set(env_example) - used, f".env.example lists unused {sorted(set(env_example) - used)}"


def test_compose_defaults_match_env_example(raw, env_example):
    """Leaving a setting out of .env gives what .env.example says; only secrets have no default."""
    secrets = {key: value for key, value in env_example.items() if value == "change-me"}
    assert resolve(raw, secrets) == resolve(raw, env_example)
    for key in secrets:
        with pytest.raises(MissingVariable):
            resolve(raw, {k: v for k, v in secrets.items() if k != key})


def test_env_example_holds_placeholders_not_secrets(env_example):
    for key, value in env_example.items():
        if re.fullmatch(r"CRMWH_CRM_\w+_PASSWORD", key):
            # the warehouse roles' logins are optional: empty leaves the role without one
            assert value == "", f"{key} in .env.example must be empty"
        elif re.search(r"PASSWORD|SECRET|FERNET", key):
            assert value == "change-me", f"{key} in .env.example must be the placeholder change-me"
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored, ".env holds the real secrets and must stay out of git"


# --- Dockerfile ---------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def copy_sources() -> list[str]:
    sources = []
    for keyword, rest in dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        words = yaml.safe_load(rest) if rest.startswith("[") else shlex.split(rest)
        if any(w.startswith("--from=") for w in words):
            continue
        sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


def dockerignore_patterns() -> list[str]:
    path = ROOT / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith(("#", "!"))]


def test_dockerfile_starts_from_the_locked_airflow_version():
    base = next(rest for keyword, rest in dockerfile_instructions() if keyword == "FROM")
    locked = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M).group(1)
    assert base == f"apache/airflow:{locked}-python3.11"


def test_dockerfile_installs_the_lock_and_the_package():
    sources = [s.rstrip("/") for s in copy_sources()]
    for needed in ("requirements.lock", "pyproject.toml", "plugins", "dags", "dbt_project", "expectations"):
        assert needed in sources, f"the Dockerfile does not COPY {needed}"
    runs = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "RUN")
    assert "-r /opt/airflow/requirements.lock" in runs
    assert "-e /opt/airflow" in runs


def test_every_copy_source_exists_and_is_not_dockerignored():
    patterns = dockerignore_patterns()
    for source in copy_sources():
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        path = source.rstrip("/")
        ignored_by = [p for p in patterns if fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/"))]
        assert not ignored_by, f"the Dockerfile copies {source}, but .dockerignore excludes it ({ignored_by})"
