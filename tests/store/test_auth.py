"""The access policy (store.access) directly, and run_app.sh's refusal to serve beyond loopback unprotected."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from store import access
from store.access import Credentials, credentials_from, gate, is_loopback, verify_login, verify_token
from store.errors import CoiError
from tests.support import ROOT

SECRET_ENV = ("COI_PASSWORD", "COI_TOKEN")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "::1", "[::1]", "127.0.0.2"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org", "", None, "127.0.0.1.evil"])
def test_other_hosts_are_not_loopback(host):
    assert not is_loopback(host)


def test_gate_open_on_loopback_login_with_a_secret_refuse_beyond_loopback_without():
    assert gate("127.0.0.1", Credentials()).action == "open"
    assert gate("127.0.0.1", Credentials(password="pw")).action == "login"
    assert gate("0.0.0.0", Credentials(token="t")).action == "login"
    assert gate("0.0.0.0", Credentials(users={"alice": "a"})).action == "login"
    refused = gate("0.0.0.0", Credentials())
    assert refused.action == "refuse" and "COI_PASSWORD" in refused.reason
    assert gate(None, Credentials()).action == "refuse"  # Streamlit's default binds every interface


def test_check_serve_raises_only_for_unprotected_non_loopback():
    access.check_serve("127.0.0.1", Credentials())
    access.check_serve("0.0.0.0", Credentials(password="pw"))
    with pytest.raises(CoiError, match="Refusing to serve on 0.0.0.0"):
        access.check_serve("0.0.0.0", Credentials())


def test_credentials_env_wins_over_secrets_and_repr_hides_them():
    secrets = {
        "password": "from-file",
        "token": "tok-file",
        "passwords": {"alice": "a-pw", "": "x", "bob": ""},
    }
    creds = credentials_from({"COI_PASSWORD": "from-env"}, secrets)
    assert creds.password == "from-env" and creds.token == "tok-file"
    assert dict(creds.users) == {"alice": "a-pw"}
    assert "from-env" not in repr(creds) and "a-pw" not in repr(creds) and "tok-file" not in repr(creds)
    assert not credentials_from({}, {"OPENAI_API_KEY": "sk-x"}).configured  # other secrets are not a login
    with pytest.raises(CoiError, match="must be a table"):
        credentials_from({}, {"passwords": "alice"})


def test_verify_login_users_table_shared_password_and_token():
    creds = Credentials(password="shared", token="tok", users={"alice": "a-pw"})
    assert verify_login(creds, "alice", "a-pw") == "alice"
    assert verify_login(creds, "alice", "shared") is None  # a listed user needs their own password
    assert verify_login(creds, " carol ", "shared") == "carol"  # anyone else: the shared secret
    assert verify_login(creds, "dave", "tok") == "dave"
    assert verify_login(creds, "dave", "wrong") is None
    assert verify_login(creds, "", "shared") is None  # a name is required: it is the reviewer
    assert verify_login(Credentials(), "eve", "") is None  # an empty secret never matches


def test_verify_token():
    creds = Credentials(token="tok")
    assert verify_token(creds, "tok") == access.TOKEN_REVIEWER
    assert verify_token(creds, "tok", "bot") == "bot"
    assert verify_token(creds, "nope") is None
    assert verify_token(Credentials(password="pw"), "pw") is None  # the password is not a URL token


def test_read_secrets_merges_user_then_project_and_names_a_bad_file(tmp_path):
    home, project = tmp_path / "home", tmp_path / "project"
    for d in (home, project):
        (d / ".streamlit").mkdir(parents=True)
    (home / ".streamlit" / "secrets.toml").write_text('password = "home"\ntoken = "home-tok"\n')
    (project / ".streamlit" / "secrets.toml").write_text('password = "proj"\n[passwords]\nalice = "a"\n')
    merged = access.read_secrets(access.secrets_files(project, home))
    assert merged == {"password": "proj", "token": "home-tok", "passwords": {"alice": "a"}}
    (project / ".streamlit" / "secrets.toml").write_text('password = "unterminated\n')
    with pytest.raises(CoiError, match="not valid TOML") as err:
        access.read_secrets(access.secrets_files(project, home))
    assert "unterminated" not in str(err.value)


# -- run_app.sh ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project_secrets_configured() -> bool:
    return credentials_from({}, access.read_secrets([ROOT / ".streamlit" / "secrets.toml"])).configured


def run_app(args: list[str], tmp_path: Path, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    clean.update(HOME=str(tmp_path), COI_DB=str(tmp_path / "coi.db"), **env)
    return subprocess.run(
        ["./run_app.sh", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("how", ["flag", "env"])
def test_run_app_refuses_a_public_host_without_a_secret(tmp_path, how):
    if project_secrets_configured():
        pytest.skip("this checkout has a .streamlit/secrets.toml with a password: the refusal cannot show")
    port = free_port()
    if how == "flag":
        done = run_app(["--host", "0.0.0.0", "--port", str(port)], tmp_path)
    else:
        done = run_app([], tmp_path, COI_HOST="0.0.0.0", COI_PORT=str(port))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Refusing to serve on 0.0.0.0 without a password or token" in done.stderr
    assert "COI_PASSWORD" in done.stderr
    # Nothing was created or served: the check runs before `coi init` and streamlit.
    assert not (tmp_path / "coi.db").exists()
    assert "CoI Studio on" not in done.stdout
    time.sleep(0.5)
    assert not listening(port)


def test_run_app_rejects_a_streamlit_address_that_would_bypass_the_check(tmp_path):
    done = run_app(["--server.address", "0.0.0.0"], tmp_path)
    assert done.returncode == 2 and "use --host" in done.stderr
    assert not (tmp_path / "coi.db").exists()


def test_access_module_cli_passes_with_a_secret_and_never_prints_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env.update(HOME=str(tmp_path), COI_TOKEN="tok-do-not-print")
    cmd = [str(ROOT / ".venv/bin/python"), "-m", "store.access", "check", "--host", "0.0.0.0"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "tok-do-not-print" not in done.stdout + done.stderr
