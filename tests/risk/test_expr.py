"""The custom-rule expression language: evaluation, rejection of code, error positions, limits."""

from __future__ import annotations

import pytest

from risk.expr import MAX_DEPTH, RuleSyntaxError, RuleTypeError, UnknownVariable, compile_expression


@pytest.mark.parametrize(
    ("src", "env", "expected"),
    [
        ("velocity_1m > 5 and amount > 1000000", {"velocity_1m": 6, "amount": 1_000_001}, True),
        ("velocity_1m > 5 and amount > 1000000", {"velocity_1m": 5, "amount": 10**12}, False),
        ("payer in deny_list", {"payer": "0xab", "deny_list": frozenset({"0xab"})}, True),
        ("payer not in deny_list", {"payer": "0xab", "deny_list": frozenset({"0xcd"})}, True),
        ('network == "eip155:8453"', {"network": "eip155:8453"}, True),
        ("network in ['eip155:8453', 'eip155:84532'] and not first_time", {"network": "eip155:84532"}, True),
        ("amount >= 2 * amount_1m - 10 / 2", {"amount": 5, "amount_1m": 5}, True),
        ("(first_time or sanctioned) and -anomaly_z < -3.5", {"first_time": True, "anomaly_z": 4}, True),
        ('"/premium" in resource', {"resource": "https://api.example/premium/x"}, True),
        ("amount > 115792089237316195423570985008687907853269984665640564039457584007913129639935", {}, False),
        ("payer_settlements == 0", {}, True),  # missing facts take their type's default
    ],
)
def test_valid_expressions(src: str, env: dict[str, object], expected: bool) -> None:
    assert compile_expression(src).evaluate(env) is expected


@pytest.mark.parametrize(
    ("src", "needle"),
    [
        ("__import__('os')", "not allowed"),
        ("().__class__", "not allowed"),
        ("() == 1", "empty parentheses"),
        ("open('x')", "not allowed"),
        ("amount.real > 1", "attribute access"),
        ("a.b", "attribute access"),
        ("f(x)", "function calls"),
        ("amount(1)", "function calls"),
        ("deny_list[0] == 'x'", "subscripts"),
        ("x[0]", "subscripts"),
        ("lambda: 1", "'lambda' is not allowed"),
        ("(lambda x: x)(1)", "'lambda' is not allowed"),
        ("amount ** 2 > 1", "'**' is not allowed"),
        ("amount > 1 && true", "unexpected character '&'"),
        ("amount > 1; import os", "unexpected character ';'"),
        ("exec('1')", "not allowed"),
        ("_secret == 1", "not allowed"),
    ],
)
def test_code_is_rejected(src: str, needle: str) -> None:
    with pytest.raises(RuleSyntaxError) as err:
        compile_expression(src)
    assert err.value.code.startswith("rule_")
    assert needle in err.value.message


def test_syntax_errors_report_their_position() -> None:
    with pytest.raises(RuleSyntaxError) as err:
        compile_expression("velocity_1m > 5 and (amount > ")
    assert err.value.code == "rule_syntax_error"
    assert err.value.position == 30  # end of input, where a value was expected
    assert "column 31" in err.value.detail
    with pytest.raises(RuleSyntaxError) as err:
        compile_expression("amount > 5 5")
    assert err.value.position == 11
    problem = err.value.to_problem()
    assert problem["code"] == "rule_syntax_error"
    assert problem["position"] == 11
    assert problem["status"] == 422


def test_unknown_variables_and_types() -> None:
    with pytest.raises(UnknownVariable) as err:
        compile_expression("amount > 1 and balance > 2")
    assert err.value.code == "rule_unknown_variable"
    assert err.value.position == 15
    with pytest.raises(RuleTypeError):
        compile_expression("payer > 3")
    with pytest.raises(RuleTypeError):
        compile_expression("amount")  # not a condition
    with pytest.raises(RuleTypeError):
        compile_expression("amount and true")


def test_limits() -> None:
    ok = "(" * (MAX_DEPTH - 1) + "true" + ")" * (MAX_DEPTH - 1)
    assert compile_expression(ok).evaluate({}) is True
    with pytest.raises(RuleSyntaxError, match="deeper than"):
        compile_expression("(" * (MAX_DEPTH + 1) + "true" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(RuleSyntaxError, match="deeper than"):
        compile_expression("not " * (MAX_DEPTH + 1) + "true")
    with pytest.raises(RuleSyntaxError, match="longer than"):
        compile_expression("amount > 1 or " * 100 + "true")
    with pytest.raises(RuleSyntaxError, match="digits"):
        compile_expression("amount > " + "9" * 100)
    with pytest.raises(RuleSyntaxError, match="chained"):
        compile_expression("1 < amount < 5")
