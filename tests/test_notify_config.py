"""`[notify]` and `[daemon] web_token_env` in config.toml: read into typed values, refused with file and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from auditor.domain.config import ConfigError, NotifyEvent, load_config
from auditor.domain.model import Severity
from conftest import run_cli

LAB = """
[[labs]]
name = "pair-01"
origin = { account_id = "111111111111" }
"""
SECRET_URL = "json://hook-user:s3cr3t-never-shown@127.0.0.1:9/hook"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text) + LAB, encoding="utf-8")
    return path


def test_without_a_notify_section_nothing_is_notified(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), env={})
    assert config.notify is None
    assert config.daemon.web_token_env == ""


def test_a_notify_section_becomes_typed_values_with_urls_from_the_file_and_then_the_environment(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        f"""
        [notify]
        urls = ["{SECRET_URL}"]
        urls_env = "CLASS_NOTIFY_URLS"
        on = ["broken", "recovered"]
        min_severity = "critical"
        page_url = "https://auditor.example.edu/"
        [daemon]
        web_token_env = "AUDITOR_WEB_TOKEN"
        """,
    )
    env = {"CLASS_NOTIFY_URLS": "json://127.0.0.1:10/a  jsons://127.0.0.1:11/b"}
    config = load_config(path, env=env)
    assert config.notify is not None
    assert config.notify.urls == (SECRET_URL, "json://127.0.0.1:10/a", "jsons://127.0.0.1:11/b")
    assert config.notify.on == {NotifyEvent.BROKEN, NotifyEvent.RECOVERED}
    assert config.notify.min_severity is Severity.CRITICAL
    assert config.notify.page_url == "https://auditor.example.edu"
    assert config.daemon.web_token_env == "AUDITOR_WEB_TOKEN"


def test_the_defaults_notify_every_event_from_high_severity_on(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[notify]\nurls_env = 'NOT_SET_HERE'\n"), env={})
    assert config.notify is not None
    assert config.notify.urls == ()
    assert config.notify.on == set(NotifyEvent)
    assert config.notify.min_severity is Severity.HIGH


def test_the_urls_are_kept_out_of_the_repr(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, f'[notify]\nurls = ["{SECRET_URL}"]\n'), env={})
    assert "s3cr3t" not in repr(config)


BAD = {
    "unknown event": ('[notify]\non = ["broken", "brokn"]\n', "notify.on[1]", "did you mean 'broken'?"),
    "event not a string": ("[notify]\non = [1]\n", "notify.on[0]", "must be a string"),
    "bad severity": ('[notify]\nmin_severity = "urgent"\n', "notify.min_severity", "not a severity"),
    "unknown key": ('[notify]\nurl = ["json://x"]\n', "notify.url", "did you mean 'urls'?"),
    "malformed url": (
        '[notify]\nurls = ["json://127.0.0.1:9/ok", "slack://only-one-part"]\n',
        "notify.urls[1]",
        "a slack:// URL is not a notification URL Apprise can send to",
    ),
    "urls not a list": ('[notify]\nurls = "json://x"\n', "notify.urls", "must be a list"),
    "bad env name": ('[notify]\nurls_env = "NOT A NAME"\n', "notify.urls_env", "not the name"),
    "bad page url": ('[notify]\npage_url = "auditor.local"\n', "notify.page_url", "not an http(s) URL"),
    "bad token env name": (
        '[daemon]\nweb_token_env = "$TOKEN"\n',
        "daemon.web_token_env",
        "not the name of an environment variable",
    ),
}


@pytest.mark.parametrize("text,key,problem", BAD.values(), ids=BAD.keys())
def test_a_bad_notify_setting_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert (caught.value.file, caught.value.key) == (str(path), key)
    assert problem in str(caught.value)


def test_a_malformed_url_from_the_environment_names_the_variable_not_the_url(tmp_path: Path) -> None:
    path = write(tmp_path, '[notify]\nurls_env = "CLASS_NOTIFY_URLS"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"CLASS_NOTIFY_URLS": "json://127.0.0.1:9/ok nope://s3cr3t-never-shown"})
    assert (caught.value.file, caught.value.key) == ("environment", "CLASS_NOTIFY_URLS (URL 2)")
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.slow  # the CLI in a process of its own
def test_the_cli_exits_2_on_a_malformed_url_and_never_prints_it(tmp_path: Path) -> None:
    path = write(tmp_path, '[notify]\nurls = ["slack://s3cr3t-never-shown"]\n')
    result = run_cli("status", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}: notify.urls[0]: a slack:// URL is not a notification URL" in result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
