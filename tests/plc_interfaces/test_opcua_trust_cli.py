"""``lineinspect plc opcua-trust``: list, trust a file, accept a rejected certificate,
remove one; bad input is a CLI error and changes nothing. The trust list fails closed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from deploy.cli import app
from plc.opcua_trust import file_name


def _cert(d: Path, name: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    cert = d / f"{name}.der"
    asyncio.run(setup_self_signed_certificate(
        d / f"{name}.pem", cert, f"urn:test:{name}", "localhost",
        [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": name}))
    return cert


def _folders(pki: Path) -> dict[str, list[str]]:
    return {f: sorted(p.name for p in (pki / f).iterdir()) if (pki / f).is_dir() else []
            for f in ("trusted", "rejected")}


def test_opcua_trust_lists_adds_accepts_and_removes(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    env = {"LINEINSPECT_OPCUA_CERT_DIR": str(pki), "COLUMNS": "250"}
    run = CliRunner().invoke
    hmi = _cert(tmp_path / "certs", "hmi")
    plc = x509.load_der_x509_certificate(_cert(tmp_path / "certs", "plc").read_bytes())
    (pki / "rejected").mkdir(parents=True)
    rejected_name = file_name(plc)
    (pki / "rejected" / rejected_name).write_bytes(plc.public_bytes(serialization.Encoding.DER))
    pem = tmp_path / "hmi.pem"  # PEM is taken and stored as DER
    pem.write_bytes(x509.load_der_x509_certificate(hmi.read_bytes())
                    .public_bytes(serialization.Encoding.PEM))

    before = _folders(pki)
    for bad in (["plc", "opcua-trust", str(tmp_path / "missing.der")],
                ["plc", "opcua-trust", str(tmp_path / "certs" / "hmi.pem")],  # a key
                ["plc", "opcua-trust", "--accept", "../rejected/" + rejected_name],
                ["plc", "opcua-trust", "--accept", "unknown.der"],
                ["plc", "opcua-trust", "--remove", rejected_name],  # not trusted
                ["plc", "opcua-trust", str(pem), "--accept", rejected_name]):
        res = run(app, bad, env=env)
        assert res.exit_code == 2, (bad, res.output)
        assert _folders(pki) == before

    res = run(app, ["plc", "opcua-trust", str(pem)], env=env)
    assert res.exit_code == 0, res.output
    hmi_name = file_name(x509.load_der_x509_certificate(hmi.read_bytes()))
    assert (pki / "trusted" / hmi_name).read_bytes() == hmi.read_bytes()
    res = run(app, ["plc", "opcua-trust", "--accept", rejected_name], env=env)
    assert res.exit_code == 0, res.output
    assert _folders(pki) == {"trusted": sorted([hmi_name, rejected_name]), "rejected": []}
    listing = run(app, ["plc", "opcua-trust"], env=env)
    assert listing.exit_code == 0 and "urn:test:plc" in listing.output
    assert "urn:test:hmi" in listing.output and listing.output.count("trusted") >= 2
    res = run(app, ["plc", "opcua-trust", "--remove", hmi_name], env=env)
    assert res.exit_code == 0, res.output
    assert _folders(pki) == {"trusted": [rejected_name], "rejected": []}


def test_an_unreadable_trusted_folder_trusts_nobody(tmp_path: Path) -> None:
    """A file in trusted/ that is no certificate: fail closed (even the trusted client is
    refused) until it is removed."""
    from asyncua import ua
    from asyncua.common.utils import ServiceError

    from plc.opcua_trust import TrustList

    cert = x509.load_der_x509_certificate(_cert(tmp_path / "certs", "plc").read_bytes())
    app = ua.ApplicationDescription(ApplicationUri="urn:test:plc")
    trust = TrustList(tmp_path / "trusted", tmp_path / "rejected")

    async def check() -> None:
        await trust.load()
        (trust.trusted / file_name(cert)).write_bytes(
            cert.public_bytes(serialization.Encoding.DER))
        await trust.validate(cert, app)
        assert trust.validated(cert.public_bytes(serialization.Encoding.DER), False)
        (trust.trusted / "notes.der").write_text("not a certificate")
        with pytest.raises(ServiceError) as refused:
            await trust.validate(cert, app)
        assert refused.value.code == ua.StatusCodes.BadCertificateUntrusted
        assert not trust.validated(cert.public_bytes(serialization.Encoding.DER), False)
        (trust.trusted / "notes.der").unlink()
        await trust.validate(cert, app)

    asyncio.run(check())
