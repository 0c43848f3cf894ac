"""The Airflow UI asks for a login: one admin user whose generated password is shown once, kept with mode 0600."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import httpx
import pytest

from crm_warehouse import airflow_runner, settings
from tests import browser

# Airflow's own view, read by its SimpleAuthManager with the environment the project gives Airflow
AIRFLOW_VIEW = """
import json
from airflow.configuration import conf
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager as m
print(json.dumps({"file": m.get_generated_password_file(), "passwords": m.get_passwords(),
                  "users": [[u.username, u.role] for u in m.get_users()],
                  "all_admins": conf.getboolean("core", "simple_auth_manager_all_admins")}))
"""
UNREACHABLE = settings.Connections(*(f"postgresql://nobody@127.0.0.1:9/{db}" for db in ("warehouse", "crm", "airflow")))


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMWH_DATA_DIR", str(tmp_path))
    return tmp_path


def test_password_is_generated_private_and_shown_once(data_dir):
    shown: list[str] = []
    path = airflow_runner.ensure_admin_login(echo=shown.append)
    password = json.loads(path.read_text())[airflow_runner.ADMIN_USER]

    assert path.parent == data_dir / "airflow"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(password) >= 20
    assert len(shown) == 1 and password in shown[0] and str(path) in shown[0]

    again: list[str] = []
    assert airflow_runner.ensure_admin_login(echo=again.append) == path
    assert len(again) == 1 and password not in again[0] and str(path) in again[0]
    assert json.loads(path.read_text()) == {airflow_runner.ADMIN_USER: password}


def test_a_file_airflow_wrote_is_kept_and_made_private(data_dir):
    path = airflow_runner.passwords_file()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"admin": "from-airflow"}) + "\n")
    path.chmod(0o644)  # as Airflow leaves the file it generates itself
    shown: list[str] = []
    airflow_runner.ensure_admin_login(echo=shown.append)
    assert json.loads(path.read_text()) == {"admin": "from-airflow"}
    assert path.stat().st_mode & 0o777 == 0o600
    assert "from-airflow" not in shown[0]


def test_airflow_reads_the_file_with_all_admins_off(data_dir):
    path = airflow_runner.ensure_admin_login(echo=lambda line: None)
    env = airflow_runner.airflow_env(UNREACHABLE)
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(path)
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    result = subprocess.run([sys.executable, "-c", AIRFLOW_VIEW], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    view = json.loads(result.stdout.strip().splitlines()[-1])
    assert view == {"file": str(path), "passwords": json.loads(path.read_text()),
                    "users": [["admin", "admin"]], "all_admins": False}


def test_api_server_refuses_anonymous_requests_and_accepts_the_generated_password(embedded, data_dir):
    airflow_runner.ensure_admin_login(echo=lambda line: None)
    password = json.loads(airflow_runner.passwords_file().read_text())["admin"]
    env = {**airflow_runner.airflow_env(embedded), "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16)}
    airflow_runner.migrate_metadata(env)
    with browser.api_server(env, data_dir / "api-server.log") as base:
        assert httpx.get(f"{base}/api/v2/dags", timeout=10).status_code in (401, 403)
        # the token for anyone that simple_auth_manager_all_admins would hand out
        assert httpx.get(f"{base}/auth/token", timeout=10).status_code == 403
        wrong = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password + "x"}, timeout=10)
        assert wrong.status_code == 401
        login = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=10)
        assert login.status_code == 201, login.text
        token = login.json()["access_token"]
        dags = httpx.get(f"{base}/api/v2/dags", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert dags.status_code == 200, dags.text
