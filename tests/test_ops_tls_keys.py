"""Issue 19: `python -m ops.tls_keys` makes the HTTPS keys once and prints commands that read them from
files, never with a key on the command line."""

from __future__ import annotations

from components import tls, tls_secrets
from ops import tls_keys


def test_keys_are_made_once_and_the_commands_read_them_from_files(tmp_path, capsys):
    directory = tmp_path / "keys"
    assert tls_keys.main(["--stack", "pi", "--dir", str(directory)]) == 0
    printed = capsys.readouterr().out
    keys = {key: (directory / name).read_text() for key, name in tls_keys.FILES.items()}
    for key, name in tls_keys.FILES.items():
        assert f"pulumi config set --stack pi --secret pihalb:{key} < {directory / name}" in printed
        assert (directory / name).stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in printed
    material = tls_secrets.check_tls_secrets(
        tls.Tls.model_validate({"names": ["www.example.org"], "certificate": {"kind": "acme", "directoryUrl": "https://a.example/d"}}),
        keys.get,
    )  # fmt: skip
    assert material.thumbprint
    tls_keys.main(["--stack", "pi", "--dir", str(directory)])  # kept
    assert {k: (directory / n).read_text() for k, n in tls_keys.FILES.items()} == keys
    tls_keys.main(["--stack", "pi", "--dir", str(directory), "--new"])
    assert (directory / tls_keys.FILES["tlsPrivateKey"]).read_text() != keys["tlsPrivateKey"]
