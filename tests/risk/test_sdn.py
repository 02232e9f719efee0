"""SDN parsing (sdn.csv remarks and sdn_advanced.xml), the packaged snapshot, and ``x402 risk update-lists``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from risk.cli import main as risk_cli
from risk.sanctions import load_sanctions, snapshot_path
from risk.sdn import parse_sdn_advanced_xml, parse_sdn_csv, parse_sdn_file

FIXTURES = Path(__file__).parent / "fixtures"


def test_csv_extracts_evm_and_solana_and_counts_the_rest() -> None:
    parsed = parse_sdn_csv((FIXTURES / "sdn_sample.csv").read_text())
    addrs = parsed.addresses
    # ETH, checksummed in the file, normalised to lower case, with the row's entity name
    assert addrs["0x7f367cc41522ce07553e823bf3be79a889debe1b"] == {"assets": ["ETH"], "names": ["POTEKHIN, Danil"]}
    # USDT on an EVM address counts as EVM; BSC too
    assert addrs["0x2f389ce8bd8ff92de3402ffce4691d17fc4f6535"]["assets"] == ["USDT"]
    assert "0x53b6936513e738f44fb50d2b9476730c0ab3bfc1" in addrs
    # Solana stays case-sensitive base58; USDC on a Solana account is kept too
    assert addrs["42RLPACwZPx3vYYmxSueqsogfynBDqXK298EDsNoyoHi"]["assets"] == ["SOL"]
    assert "FuCC7GoYwt5TsNTjWL23Xx9UKCvC18chjMEFPL3vJDCC" in addrs
    assert len(addrs) == 5
    # XBT / TRX / USDT-on-Tron are valid entries of other chains: counted, not stored
    assert parsed.other_assets == {"XBT": 2, "TRX": 1, "USDT (other chain)": 1}
    # a truncated ETH address, a non-base58 SOL value and a junk ARB value are skipped and counted
    assert parsed.skipped == 3
    assert any(ex.startswith("ETH 0x7f367cc41522ce07553e823bf3be79a889debe") for ex in parsed.skipped_examples)


def test_xml_feature_types() -> None:
    parsed = parse_sdn_advanced_xml((FIXTURES / "sdn_advanced_sample.xml").read_bytes())
    assert set(parsed.addresses) == {
        "0x098b716b8aaf21512996dc57eb0615e2383e2f96",
        "42RLPACwZPx3vYYmxSueqsogfynBDqXK298EDsNoyoHi",
    }
    assert parsed.skipped == 1  # "0x1234"
    assert parsed.other_assets == {"XBT": 1}


def test_format_is_sniffed() -> None:
    assert len(parse_sdn_file((FIXTURES / "sdn_advanced_sample.xml").read_bytes()).addresses) == 2
    assert len(parse_sdn_file((FIXTURES / "sdn_sample.csv").read_bytes()).addresses) == 5


def test_packaged_snapshot_is_labelled_and_dated() -> None:
    sl = load_sanctions(None)
    assert sl.sample is True  # a partial excerpt: the operator must load the real list
    assert sl.version == "2025-05-29"
    assert "0x098b716b8aaf21512996dc57eb0615e2383e2f96" in sl  # Lazarus Group (Ronin), designated 2022-04-14
    assert "0x098B716B8Aaf21512996dC57EB0615e2383E2f96" in sl  # any case
    assert "42RLPACwZPx3vYYmxSueqsogfynBDqXK298EDsNoyoHi" in sl
    assert "42rlpacwzpx3vyymxsueqsogfynbdqxk298edsnoyohi" not in sl  # base58 is case-sensitive
    assert sl.name_of("0x7ff9cfad3877f21d41da833e2f775db0569ee3d9") == "GARANTEX EUROPE OU"


def test_update_lists_writes_data_dir_which_wins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = risk_cli(
        [
            "update-lists",
            "--file",
            str(FIXTURES / "sdn_sample.csv"),
            "--version",
            "2026-11-01",
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evm"] == 3
    assert out["solana"] == 2
    assert out["skipped"] == 3
    doc = json.loads(snapshot_path(tmp_path).read_text())
    assert doc["version"] == "2026-11-01"
    assert "sample" not in doc
    sl = load_sanctions(tmp_path)
    assert sl.version == "2026-11-01"
    assert "0x53b6936513e738f44fb50d2b9476730c0ab3bfc1" in sl
    assert "0x7ff9cfad3877f21d41da833e2f775db0569ee3d9" not in sl  # only in the packaged snapshot


def test_update_lists_refuses_an_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "sdn.csv"
    empty.write_text(
        '36,"AEROCARIBBEAN AIRLINES","-0- ","CUBA","-0- ","-0- ","-0- ","-0- ","-0- ","-0- ","-0- ","-0- "\n'
    )
    assert risk_cli(["update-lists", "--file", str(empty), "--data-dir", str(tmp_path)]) == 2
    assert not snapshot_path(tmp_path).exists()


def test_check_rule_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert risk_cli(["check-rule", "velocity_1m > 5 and amount > 1000000"]) == 0
    assert risk_cli(["check-rule", "amount >"]) == 1
    assert "rule_syntax_error" in capsys.readouterr().err
