"""The node credential: private file or environment, refused when exposed, never logged."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from control_plane.cli.main import cli
from control_plane.telemetry.agent.credential import (
    CREDENTIAL_ENV,
    CredentialError,
    load_credential,
)
from tests.unit.telemetry.conftest import SECRET


def credential_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "node.cred"
    path.write_text(SECRET + "\n")
    path.chmod(mode)
    return path


class TestCredential:
    def test_a_private_file_gives_the_bearer_header(self, tmp_path: Path) -> None:
        credential = load_credential(credential_file(tmp_path, 0o600), {})

        assert credential.authorization() == f"Bearer {SECRET}"
        assert SECRET not in repr(credential)
        assert SECRET not in str(credential)

    @pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
    def test_a_file_others_can_read_is_refused_with_the_fix(
        self, tmp_path: Path, mode: int
    ) -> None:
        path = credential_file(tmp_path, mode)

        with pytest.raises(CredentialError, match="chmod 600") as caught:
            load_credential(path, {CREDENTIAL_ENV: "from-env"})

        assert f"{mode:04o}" in str(caught.value)
        assert SECRET not in str(caught.value)

    def test_the_environment_is_used_without_a_file(self) -> None:
        credential = load_credential(None, {CREDENTIAL_ENV: f" {SECRET} "})

        assert credential.authorization() == f"Bearer {SECRET}"

    def test_no_credential_at_all_says_where_to_put_one(self) -> None:
        with pytest.raises(CredentialError, match=CREDENTIAL_ENV):
            load_credential(None, {})

    def test_cpctl_agent_run_refuses_to_start_with_an_exposed_file(self, tmp_path: Path) -> None:
        path = credential_file(tmp_path, 0o644)

        result = CliRunner().invoke(
            cli,
            [
                "agent",
                "run",
                "--url",
                "http://127.0.0.1:9",
                "--credential-file",
                str(path),
                "--source",
                "fake",
                "--spool-dir",
                str(tmp_path / "spool"),
            ],
        )

        assert result.exit_code == 1
        assert "accessible by group or others" in result.output
        assert SECRET not in result.output
        assert not (tmp_path / "spool").exists()  # it never started
