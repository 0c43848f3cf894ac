"""No password, token or key in the repository: every file git knows of is scanned.

Scanned: tracked files plus untracked ones git does not ignore (about to be committed); .env and .data/
are ignored, so local secrets there are not. A finding names file:line and what it looks like. A value
that is not a secret belongs in PLACEHOLDERS below, with the reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from crm_warehouse import settings

# Values that stand for a secret without being one. Keep this short; each needs a reason.
PLACEHOLDERS = {
    "change-me",  # .env.example's value for every secret; docker/airflow-init.sh warns while one is left
    "password",  # the word itself, in documented DSN examples (.env.example: postgresql://user:password@...)
    "pass",  # the same in the README's and alerts' URI examples (user:pass@host)
}
# ${VAR}, $VAR, $(cmd) (shell, compose), {{ ... }} (Jinja: dbt), {name} (f-string, format),
# %(name)s, <name> (documentation), *** (warehouse.safe_dsn's mask)
SUBSTITUTION = re.compile(r"\$.*|\{\{.*\}\}|\{[^{}]*\}|%\([^)]*\)s|<[^<>]*>|\*+")

SECRET_NAME = r"[\w.-]*(?:password|passwd|passphrase|secret|token|(?:api|access|secret|private)[_-]?key)"
# key = value (any spaces) or key: value (YAML, JSON, dict); a quoted value is read whole
QUOTED = r"""[rbfu]{0,2}"([^"]*)"|[rbfu]{0,2}'([^']*)'"""  # Python's string prefixes too
ASSIGNMENT = re.compile(rf"(?i)\b{SECRET_NAME}['\"]?(?:\s*=|:)(?!=)\s*(?:{QUOTED}|([^\s#,;]*))")
# files where an unquoted value is a literal (elsewhere, e.g. in Python, it is an expression)
CONFIG_SUFFIXES = {".env", ".example", ".yml", ".yaml", ".ini", ".cfg", ".conf", ".toml", ".properties", ".sh"}
CONFIG_NAMES = {"Dockerfile", "Makefile", ".env"}
SQL_PASSWORD = re.compile(r"(?i)\bpassword\s+'([^']*)'")
URI_USERINFO = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://([^\s/@'\"]+)@")
TOKENS = {
    "private key block": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
}


def is_placeholder(value: str) -> bool:
    return value == "" or value.lower() in PLACEHOLDERS or SUBSTITUTION.fullmatch(value) is not None


def scan_line(path: str, line: str) -> list[str]:
    """What in this line looks like a secret, one description each."""
    found = [kind for kind, pattern in TOKENS.items() if pattern.search(line)]
    for match in URI_USERINFO.finditer(line):
        user, sep, password = match.group(1).rpartition(":")
        if sep and not is_placeholder(password):
            found.append("password in a URI")
    config = Path(path).suffix in CONFIG_SUFFIXES or Path(path).name in CONFIG_NAMES
    for match in ASSIGNMENT.finditer(line):
        quoted = match.group(1) if match.group(1) is not None else match.group(2)
        value = quoted if quoted is not None else (match.group(3) if config else "")
        if not is_placeholder(value):
            found.append("secret assigned a literal")
    if Path(path).suffix == ".sql":
        found += ["password literal in SQL" for m in SQL_PASSWORD.finditer(line) if not is_placeholder(m.group(1))]
    return found


def repository_files() -> list[str]:
    if shutil.which("git") is None:
        pytest.fail("git is not installed: the secrets scan lists the repository's files with `git ls-files`.")
    result = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=settings.PROJECT_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"`git ls-files` failed in {settings.PROJECT_ROOT}: {result.stderr.strip()}")
    return sorted(name for name in result.stdout.split("\0") if name)


def scan_file(path: str) -> list[str]:
    try:
        data = (settings.PROJECT_ROOT / path).read_bytes()
    except FileNotFoundError:  # deleted in the work tree, not yet in the index
        return []
    if b"\0" in data[:8192]:
        return []  # binary
    text = data.decode("utf-8", errors="replace")
    return [f"{path}:{number}: {kind}" for number, line in enumerate(text.splitlines(), 1)
            for kind in scan_line(path, line)]


def test_no_secret_in_any_repository_file():
    files = repository_files()
    assert len(files) > 50, f"git listed only {len(files)} files; is {settings.PROJECT_ROOT} the checkout?"
    findings = [finding for path in files for finding in scan_file(path)]
    assert not findings, ("Possible secrets (remove them, or add a placeholder to PLACEHOLDERS with the reason):\n"
                          + "\n".join(findings))


# Samples are assembled at run time so this file itself holds nothing that looks like a secret.
KEYWORD = "pass" + "word"
LITERAL = "hunter" + "2-" + "x9"


@pytest.mark.parametrize(("path", "line", "kind"), [
    ("key.pem", "-----BEGIN " + "RSA PRIVATE KEY-----", "private key block"),
    ("key.pem", "-----BEGIN " + "PRIVATE KEY-----", "private key block"),
    ("key.asc", "-----BEGIN PGP " + "PRIVATE KEY BLOCK-----", "private key block"),
    ("settings.py", "aws_id = '" + "AKIA" + "ABCDEFGHIJKLMNOP" + "'", "AWS access key id"),
    ("ci.yml", "gh_auth: " + "ghp" + "_" + "a1B2" * 9, "GitHub token"),
    ("notify.py", "hook = '" + "xox" + "b-" + "1234567890-abcdefghij" + "'", "Slack token"),
    ("README.md", "postgresql://crmwh:" + LITERAL + "@db.example.com:5432/warehouse", "password in a URI"),
    (".env.example", "REDIS_URL=redis://:" + LITERAL + "@redis:6379/0", "password in a URI"),
    ("app.py", f'{KEYWORD} = "{LITERAL}"', "secret assigned a literal"),
    ("app.py", f'db_{KEYWORD} = f"{LITERAL}"', "secret assigned a literal"),
    ("app.py", f'config = {{"db_{KEYWORD}": "{LITERAL}"}}', "secret assigned a literal"),
    ("profiles.yml", f"      {KEYWORD}: {LITERAL}", "secret assigned a literal"),
    (".env.example", f"AIRFLOW_JWT_SECRET={LITERAL}", "secret assigned a literal"),
    ("init.sql", f"create role crmwh login {KEYWORD} '{LITERAL}';", "password literal in SQL"),
])
def test_scanner_flags_secrets(path, line, kind):
    assert kind in scan_line(path, line)


@pytest.mark.parametrize(("path", "line"), [
    (".env.example", f"POSTGRES_{KEYWORD.upper()}=change-me"),
    (".env.example", f"WAREHOUSE_DSN=postgresql://user:{KEYWORD}@db.example.com:5432/warehouse"),
    ("docker-compose.yml", f"  POSTGRES_{KEYWORD.upper()}: ${{POSTGRES_{KEYWORD.upper()}:?set it in .env}}"),
    ("docker-compose.yml", "  url: postgresql://${AIRFLOW_DB_USER:-airflow}:${AIRFLOW_DB_PW}@warehouse:5432/a"),
    ("profiles.yml", f"      {KEYWORD}: \"{{{{ env_var('DBT_PG_PASSWORD', '') }}}}\""),
    ("embedded_postgres.py", 'return f"postgresql://{SUPERUSER}:{secret_value}@127.0.0.1:5432/db"'),
    ("transform.py", f'"DBT_PG_{KEYWORD.upper()}": unquote(parts.{KEYWORD} or ""),'),
    ("docs/deployment.md", "psql postgresql://crmwh:<WAREHOUSE_DB_PW>@localhost:5432/warehouse"),
    ("status.txt", "postgresql://postgres:***@127.0.0.1:55432/warehouse"),
    ("init-warehouse.sql", f"create role :\"warehouse_user\" login {KEYWORD} :'warehouse_{KEYWORD}';"),
    ("app.py", f"if {KEYWORD} == expected:"),
])
def test_scanner_allows_placeholders_and_substitutions(path, line):
    assert scan_line(path, line) == []
