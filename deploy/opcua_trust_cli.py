"""``lineinspect plc opcua-trust``: the OPC UA server's client-certificate trust list
(docs/PLC.md "Trusting a client")."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from deploy.cli_base import fail

console = Console()


def opcua_trust(
    cert: Path = typer.Argument(None, help="a client certificate file (DER or PEM) to trust"),
    accept: str = typer.Option(None, help="move this rejected certificate to trusted"),
    remove: str = typer.Option(None, help="stop trusting this certificate (deletes it)"),
) -> None:
    """List the trusted and rejected client certificates, or trust one (a file, or
    ``--accept`` a rejected one), or ``--remove`` one. Takes effect at the next session
    without a restart; open sessions keep running."""
    from core.settings import Settings
    from plc.opcua_trust import TrustList

    if sum(x is not None for x in (cert, accept, remove)) > 1:
        raise typer.BadParameter("give one of CERT, --accept, --remove")
    trust = TrustList.from_settings(Settings())
    try:
        if cert is not None:
            if not cert.is_file():
                raise ValueError(f"{cert} is not a file")
            console.print(f"trusted: {trust.add(cert.read_bytes())}")
        elif accept is not None:
            console.print(f"trusted: {trust.accept(accept)}")
        elif remove is not None:
            console.print(f"no longer trusted (removed): {trust.remove(remove)}")
        else:
            _list(trust)
    except ValueError as exc:
        fail(str(exc))


def _list(trust) -> None:  # noqa: ANN001 - plc.opcua_trust.TrustList, imported lazily
    from plc.opcua_trust import cert_info, certificate_files

    table = Table("folder", "name", "common name", "application URI", "SHA-1 thumbprint",
                  "valid until")
    for label, folder in (("trusted", trust.trusted), ("rejected", trust.rejected)):
        for path in certificate_files(folder):
            try:
                i = cert_info(path)
            except ValueError:
                table.add_row(label, path.name, "(not a certificate)", "", "", "")
                continue
            table.add_row(label, i.name, i.common_name, i.application_uri, i.thumbprint,
                          i.not_after.strftime("%Y-%m-%d"))
    console.print(table)
    console.print(f"trusted: {trust.trusted}  rejected: {trust.rejected}")
