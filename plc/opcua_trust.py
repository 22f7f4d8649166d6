"""The OPC UA server's client-certificate trust list (docs/PLC.md "Trusting a client").

A client's application instance certificate must be in the **trusted** folder
(``opcua_trusted_dir``, default ``<opcua_cert_dir>/trusted``), or be issued by a CA
certificate in it, for the client to get a session. An unknown certificate is refused with
``BadCertificateUntrusted`` and written to the **rejected** folder
(``<opcua_cert_dir>/rejected``) so an administrator can accept it by moving it to trusted -
the workflow of UaExpert, Prosys and Siemens servers. ``opcua_trust_all_clients``
(commissioning) accepts unknown certificates but still writes them to rejected.

The checks are asyncua's (:class:`asyncua.crypto.validator.CertificateValidator` with a
:class:`asyncua.crypto.truststore.TrustStore`), run by asyncua at ``CreateSession``
(:meth:`TrustList.validate`). The trusted folder is re-read when its content changed, so
accepting a certificate needs no restart. asyncua skips the validator when a client sends
no certificate in ``CreateSession``; :meth:`TrustList.validated`, called at
``ActivateSession`` with the secure channel's certificate, closes that gap: only a channel
certificate that passed :meth:`TrustList.validate` gets a session.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from core.settings import Settings

log = logging.getLogger(__name__)

#: What asyncua checks: validity period, the application URI against the certificate's
#: subjectAltName, trust (the certificate or its issuer in the trusted folder). Key usage is
#: not checked: trusting a certificate is an explicit decision of the administrator, and some
#: PLC stacks issue certificates without every key-usage bit.
OPTIONS = (CertificateValidatorOptions.TIME_RANGE | CertificateValidatorOptions.URI
           | CertificateValidatorOptions.TRUSTED)
#: Most certificates kept in the rejected folder (unknown clients cannot fill the disk).
REJECTED_MAX = 200
#: Certificates remembered between CreateSession and ActivateSession (memory stays bounded
#: when ``trust_all`` admits many unknown clients).
ACCEPTED_MAX = 1000
_CERT_SUFFIXES = (".der", ".pem")  # what asyncua's TrustStore reads


@dataclass(frozen=True)
class CertInfo:
    """What an administrator needs to recognise a certificate."""

    name: str
    common_name: str
    application_uri: str
    thumbprint: str
    not_after: datetime


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from DER or PEM bytes (the first one of a DER chain); ValueError if
    ``data`` is neither."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(_first_der(data))


def _first_der(data: bytes) -> bytes:
    """The first DER element of ``data`` (OPC UA allows a chain: leaf, then issuers)."""
    if len(data) < 2 or data[0] != 0x30:
        raise ValueError("not a DER certificate")
    if data[1] < 0x80:
        return data[: 2 + data[1]]
    n = data[1] & 0x7F
    return data[: 2 + n + int.from_bytes(data[2 : 2 + n], "big")]


def thumbprint(cert: x509.Certificate) -> str:
    """SHA-1 thumbprint in hex, as OPC UA clients (UaExpert, TIA Portal) display it."""
    return cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - an identifier, not a signature


def file_name(cert: x509.Certificate) -> str:
    """``<common name>-<thumbprint>.der``, only ``[A-Za-z0-9._-]``."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = re.sub(r"[^A-Za-z0-9._-]+", "_", str(names[0].value) if names else "client")
    return f"{cn.strip('._')[:40] or 'client'}-{thumbprint(cert)}.der"


def cert_info(path: Path) -> CertInfo:
    """:class:`CertInfo` of a certificate file; ValueError if it is not one."""
    cert = load_certificate(path.read_bytes())
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    return CertInfo(path.name, str(names[0].value) if names else "", uris[0] if uris else "",
                    thumbprint(cert), cert.not_valid_after_utc)


def certificate_files(folder: Path) -> list[Path]:
    """The certificate files of ``folder``, by name (none when it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in _CERT_SUFFIXES)


class TrustList:
    """The trusted and rejected folders of one OPC UA server, and asyncua's validator."""

    def __init__(self, trusted: Path, rejected: Path, trust_all: bool = False) -> None:
        """Nothing is read before :meth:`load`."""
        self.trusted, self.rejected, self.trust_all = trusted, rejected, trust_all
        self.validator = CertificateValidator(OPTIONS, TrustStore([trusted], []))
        self._loaded: tuple[tuple[str, int, int], ...] | None = None
        self._accepted: set[bytes] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> TrustList:
        """The folders and the commissioning switch of ``settings``."""
        return cls(settings.opcua_trusted_path, settings.opcua_rejected_path,
                   settings.opcua_trust_all_clients)

    def _listing(self) -> tuple[tuple[str, int, int], ...]:
        listing = []
        for p in certificate_files(self.trusted):
            try:
                st = p.stat()
            except FileNotFoundError:  # moved away while we looked
                continue
            listing.append((p.name, st.st_mtime_ns, st.st_size))
        return tuple(listing)

    async def load(self) -> None:
        """Create the folders and (re)read the trusted certificates if they changed since
        the last load; a change also forgets the certificates accepted so far."""
        for folder in (self.trusted, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        listing = self._listing()
        if listing == self._loaded:
            return
        store = TrustStore([self.trusted], [])
        try:
            if listing:  # cryptography's Store refuses an empty list: then nobody is trusted
                await store.load()
        except (ValueError, OSError) as exc:  # fail closed: trust nobody until it is fixed
            log.error("opcua: trusted folder %s unreadable (%s): no client is trusted",
                      self.trusted, exc)
            store = TrustStore([self.trusted], [])
        # all three at once (no await between): a concurrent session sees old or new
        self.validator = CertificateValidator(OPTIONS, store)
        self._loaded, self._accepted = listing, set()
        log.info("opcua: %d trusted client certificate(s) in %s", len(listing), self.trusted)

    async def validate(self, cert: x509.Certificate,
                       app: ua.ApplicationDescription) -> None:
        """asyncua's certificate-validator hook (``CreateSession``): raises
        ``ServiceError(BadCertificate...)`` to refuse the client; an untrusted certificate
        is written to the rejected folder (and accepted when ``trust_all``)."""
        await self.load()
        try:
            await self.validator.validate(cert, app)
        except ServiceError as exc:
            if exc.code != ua.StatusCodes.BadCertificateUntrusted:
                log.warning("opcua: client %s refused (%s)", app.ApplicationUri,
                            ua.StatusCode(exc.code).name)
                raise
            where = self.reject(cert)
            if not self.trust_all:
                log.warning("opcua: client %s refused: certificate not trusted (%s); move it "
                            "to %s to trust it", app.ApplicationUri, where, self.trusted)
                raise
            log.warning("opcua: client %s accepted WITHOUT TRUST (opcua_trust_all_clients); "
                        "its certificate is %s", app.ApplicationUri, where)
        if len(self._accepted) >= ACCEPTED_MAX:  # bounded; a client re-validates per session
            self._accepted.clear()
        self._accepted.add(cert.fingerprint(hashes.SHA256()))

    def validated(self, der: bytes | None, insecure_allowed: bool) -> bool:
        """Whether a session on a secure channel with certificate ``der`` may be activated:
        the certificate passed :meth:`validate` since the trusted folder last changed.
        No certificate (the ``NoSecurity`` endpoint) only when ``insecure_allowed``."""
        if not der:
            return insecure_allowed
        try:
            cert = load_certificate(der)
        except ValueError:
            return False
        return cert.fingerprint(hashes.SHA256()) in self._accepted

    def reject(self, cert: x509.Certificate) -> str:
        """Write ``cert`` (DER) to the rejected folder unless it is there or the folder
        holds :data:`REJECTED_MAX` certificates; where it is (or why not)."""
        path = self.rejected / file_name(cert)
        if path.exists():
            return str(path)
        if len(certificate_files(self.rejected)) >= REJECTED_MAX:
            return f"not stored: {self.rejected} holds {REJECTED_MAX} certificates"
        try:
            path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        except OSError as exc:  # the client stays refused; the log says why it is not there
            return f"not stored: {exc}"
        return str(path)

    # -- the administrator's side (``lineinspect plc opcua-trust``) ------------------------

    def _named(self, folder: Path, name: str) -> Path:
        """``folder/name`` for a plain certificate file name that exists; ValueError else."""
        if Path(name).name != name or name.startswith("."):
            raise ValueError(f"{name!r} is not a file name")
        path = folder / name
        if path not in certificate_files(folder):
            raise ValueError(f"no certificate {name!r} in {folder}")
        return path

    def accept(self, name: str) -> Path:
        """Move the rejected certificate ``name`` to the trusted folder; its new path."""
        source = self._named(self.rejected, name)
        load_certificate(source.read_bytes())
        self.trusted.mkdir(parents=True, exist_ok=True)
        return Path(shutil.move(source, self.trusted / name))

    def add(self, data: bytes) -> Path:
        """Trust the certificate ``data`` (DER or PEM; stored as DER); its path. A copy of
        it in the rejected folder is removed."""
        cert = load_certificate(data)
        self.trusted.mkdir(parents=True, exist_ok=True)
        path = self.trusted / file_name(cert)
        path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        (self.rejected / path.name).unlink(missing_ok=True)
        return path

    def remove(self, name: str) -> Path:
        """Stop trusting ``name`` (deleted from the trusted folder); the path it had."""
        path = self._named(self.trusted, name)
        path.unlink()
        return path
