"""`cotrain task post --token`: a token that is no address is refused in one line, before any connection."""

from __future__ import annotations

from pathlib import Path

import yaml
from e2e_helpers import RunCli, builtin_spec, error_line


def test_task_post_refuses_a_token_that_is_no_address(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(builtin_spec("digits")), encoding="utf-8")

    result = run_cli(
        "task", "post", path, "--token", "0x1234", "--network", tmp_path / "unused.json", timeout=60
    )

    assert result.returncode == 1, result.explain()
    assert error_line(result) == "error: --token '0x1234' is not an address (0x and 40 hex digits)", (
        result.explain()
    )
