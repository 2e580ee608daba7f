"""What the property-based tests share: Hypothesis settings and strategies for text and numbers that
tend to break configs, the validate-then-run outcome, and the rendered configs checked by their daemons."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from components.settings import ConfigError
from tests.artifact_tools import embedded_file, run, script_of, tool

FAST = settings(
    max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SLOW = settings(
    max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Text that tends to break configs: quotes, comments, blocks, escapes, whitespace, newlines, non-ASCII.
SPECIAL_CHAR = st.sampled_from(list("\"'#!{}\\$;: \t\n\r%@/?&*=,.-_~\x00é\u2028"))
SPECIAL = st.one_of(SPECIAL_CHAR, st.sampled_from(["${X}", "${_HASH}", "\\x41", "$(id)"]))
TEXT = st.text(st.one_of(st.characters(codec="utf-8", exclude_categories=["Cs"]), SPECIAL_CHAR), max_size=24)


def text_like(*valid: str):
    """Arbitrary text, known-good values, and known-good values with something special around them."""
    good = st.sampled_from(valid)
    return st.one_of(TEXT, good, st.tuples(good, SPECIAL, good).map("".join), st.tuples(good, SPECIAL).map("".join))


NUMBER = st.one_of(
    st.integers(-5, 70000),
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.sampled_from("0123456789.-"), max_size=4),
    st.none(),
)


def around(*edges: int):
    """Integers at and next to the daemons' limits, plus anything else a user might type."""
    return st.one_of(st.sampled_from([e + d for e in edges for d in (-1, 0, 1)]), NUMBER)


def outcome(run_or_refuse, alter, *keys: str):
    """The program's run, or None when the value was refused as the issue requires."""
    try:
        return run_or_refuse("dev", alter)
    except ConfigError as err:
        message = str(err)
        assert any(f"pihalb:{key}" in message for key in keys), message
        assert "Fix:" in message
        return None


def haproxy_cfg(program, name: str = "lb1") -> str:
    cfg = embedded_file(program.named(f"{name}-haproxy-config"))
    run([tool("haproxy"), "-c", "-f", "/dev/stdin"], input=cfg)
    return cfg


def keepalived_conf(program, tmp_path, name: str = "lb1") -> str:
    conf = embedded_file(program.named(f"vrrp-{name}-keepalived"))
    path = tmp_path / f"{name}.conf"
    path.write_text(conf)
    run([tool("keepalived"), "--config-test", "-f", str(path)])
    return conf


def scripts_parse(declared, tmp_path) -> None:
    for command in declared.of_type("command:remote:Command"):
        for step in ("create", "delete"):
            if step in command.inputs and command.inputs[step]:
                run([tool("bash"), "-n"], input=script_of(command, step))
