#!/usr/bin/env python3
"""Sign a PDF through Quill with pyHanko's CSC client, then validate it with pyHanko.

Two commands (run with the Python of the venv made by ``.ci/pyhanko-venv``):

``dev-ca``
    Log in, read ``credentials/info`` (certificates "chain") and print the last certificate of the
    chain, the development CA, as PEM after checking that it is a self-signed CA certificate that
    issued the credential's certificate. Use it as the trust root of ``sign``.

``sign``
    Log in (``auth/login`` with HTTP Basic -> bearer token), let pyHanko read the credential with
    its own ``fetch_certs_in_csc_credential``, and sign a PDF (PAdES-B-B: /ETSI.CAdES.detached,
    signing-certificate-v2, no signing-time attribute) with pyHanko's ``CSCSigner``. The Signature
    Activation Data comes from Quill only: the authorization manager below POSTs
    ``credentials/authorize`` with the body pyHanko's ``format_csc_auth_request`` builds (v1
    names: ``hash``, ``PIN``, ``OTP``, no ``hashAlgorithmOID``) carrying the PIN and the current
    TOTP code. pyHanko then calls ``signatures/signHash`` (v1 names ``hash``, ``hashAlgo``).
    The signed PDF is validated with pyHanko's validator against the given trust root (no
    fetching) and must be intact, valid and trusted; the signature value is also verified here
    with ``cryptography`` against the credential's certificate over the DER signed attributes,
    whose digest must be the hash that was sent to signHash.

Prints one JSON line (a summary the tests read) and exits 0 only when every check holds; on any
failure the reasons go to stderr and the exit status is 1 (2 for usage errors).

Secrets may come from the environment instead of the command line: QUILL_PASSWORD, QUILL_PIN,
QUILL_TOTP_SECRET.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import io
import json
import os
import struct
import sys
import time
from datetime import datetime, timezone

import aiohttp
from asn1crypto import cms, pem, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationInfo,
    CSCAuthorizationManager,
    CSCServiceSessionInfo,
    CSCSigner,
    fetch_certs_in_csc_credential,
)
from pyhanko.sign.timestamps.aiohttp_client import HTTPTimeStamper
from pyhanko.sign.validation.pdf_embedded import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

DIGESTS = {
    "sha256": ("2.16.840.1.101.3.4.2.1", hashes.SHA256),
    "sha384": ("2.16.840.1.101.3.4.2.2", hashes.SHA384),
    "sha512": ("2.16.840.1.101.3.4.2.3", hashes.SHA512),
}


class Failed(Exception):
    """A check that did not hold (exit status 1)."""


def totp(secret_b32: str, now: float | None = None) -> str:
    """RFC 6238 TOTP: HMAC-SHA-1, 6 digits, 30-second steps (what Quill enrols)."""
    secret = secret_b32.strip().replace(" ", "").upper()
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    step = int((time.time() if now is None else now) // 30)
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


async def csc_post(session, url, *, json_body, headers=None) -> dict:
    """POST a CSC request; a non-2xx answer becomes Failed with Quill's error body."""
    async with session.post(url, json=json_body, headers=headers) as resp:
        text = await resp.text()
        if resp.status // 100 != 2:
            raise Failed(f"POST {url}: HTTP {resp.status}: {text}")
        return json.loads(text) if text else {}


async def login(session, base_url: str, api: str, user: str, password: str) -> str:
    """auth/login with HTTP Basic -> the bearer token."""
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    data = await csc_post(
        session,
        f"{base_url}/csc/{api}/auth/login",
        json_body={},
        headers={"Authorization": f"Basic {basic}"},
    )
    token = data.get("access_token")
    if not isinstance(token, str) or not token:
        raise Failed(f"auth/login answered without access_token: {sorted(data)}")
    return token


class QuillAuthorizationManager(CSCAuthorizationManager):
    """Gets a fresh SAD from Quill's credentials/authorize for every signHash batch: the v1 body
    of pyHanko's ``format_csc_auth_request`` with the hashes about to be signed, the PIN and the
    current TOTP code. The only source of SADs in this script."""

    def __init__(self, session, csc_session_info, credential_info, pin, totp_secret):
        super().__init__(csc_session_info, credential_info)
        self.session = session
        self.pin = pin
        self.totp_secret = totp_secret
        self.requests = []  # field names of each authorize request
        self.sads = []  # each SAD Quill returned
        self.expires_in = []
        self.errors = []  # credentials/authorize refusals

    async def authorize_signature(self, hash_b64s: list[str]) -> CSCAuthorizationInfo:
        body = self.format_csc_auth_request(
            pin=self.pin,
            otp=totp(self.totp_secret),
            hash_b64s=hash_b64s,
            description="pyHanko interop test",
        )
        self.requests.append(sorted(body))
        try:
            data = await csc_post(
                self.session,
                self.csc_session_info.endpoint_url("credentials/authorize"),
                json_body=body,
                headers=self.auth_headers,
            )
        except Failed as e:
            # pyHanko logs this and raises its own "No signing results available".
            self.errors.append(str(e))
            raise SigningError(str(e)) from e
        info = self.parse_csc_auth_response(data)
        self.sads.append(info.sad)
        self.expires_in.append(data.get("expiresIn"))
        if info.expires_at is None or info.expires_at <= datetime.now(timezone.utc):
            raise SigningError(f"SAD already expired: expiresIn={data.get('expiresIn')!r}")
        return info


class RecordingCSCSigner(CSCSigner):
    """pyHanko's CSCSigner, unchanged, keeping a copy of each signHash body it builds."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sign_requests = []

    async def format_csc_signing_req(self, tbs_hashes, digest_algorithm):
        req = await super().format_csc_signing_req(tbs_hashes, digest_algorithm)
        self.sign_requests.append(dict(req))
        return req


def one_page_pdf() -> bytes:
    """A small one-page PDF made with pyHanko's own writer."""
    w = PdfFileWriter()
    font = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Font"),
            pdf_name("/Subtype"): pdf_name("/Type1"),
            pdf_name("/BaseFont"): pdf_name("/Helvetica"),
        }
    )
    resources = generic.DictionaryObject(
        {pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): w.add_object(font)})}
    )
    content = generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 720 Td (Signed through Quill) Tj ET")
    w.insert_page(PageObject(contents=w.add_object(content), media_box=(0, 0, 595, 842), resources=resources))
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def signed_attrs_der(signer_info) -> bytes:
    """The DER of the signed attributes as signed: the [0] IMPLICIT tag read as SET OF."""
    der = signer_info["signed_attrs"].dump()
    if der[0] != 0xA0:
        raise Failed(f"unexpected signed attributes tag {der[0]:#x}")
    return b"\x31" + der[1:]


def verify_locally(cert_der: bytes, algo, digest_name: str, tbs: bytes, sig: bytes) -> None:
    """Verify the CMS signature value with `cryptography` against the certificate."""
    key = cx509.load_der_x509_certificate(cert_der).public_key()
    h = DIGESTS[digest_name][1]()
    name = algo["algorithm"].native
    if name == "rsassa_pss":
        params = algo["parameters"]
        salt = params["salt_length"].native
        mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
        if params["hash_algorithm"]["algorithm"].native != digest_name or mgf_hash != digest_name:
            raise Failed(f"PSS parameters name another digest: {params.native}")
        key.verify(sig, tbs, padding.PSS(mgf=padding.MGF1(h), salt_length=salt), h)
    elif name == f"{digest_name}_rsa" and isinstance(key, rsa.RSAPublicKey):
        key.verify(sig, tbs, padding.PKCS1v15(), h)
    elif name == f"{digest_name}_ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(sig, tbs, ec.ECDSA(h))
    else:
        raise Failed(f"unexpected signature algorithm {name} for {type(key).__name__}")


def load_trust_root(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        data = f.read()
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


async def sign(args) -> dict:
    summary: dict = {"api": args.api, "pss": args.pss, "requests": []}
    failures: list[str] = []

    async def on_request_end(_session, _ctx, params):
        summary["requests"].append([params.method, params.url.path, params.response.status])

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    trust_root = load_trust_root(args.trust_root)
    pdf_in = open(args.input, "rb").read() if args.input else one_page_pdf()

    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        token = await login(session, args.url, args.api, args.user, args.password)
        if args.api == "v1":
            # pyHanko's default api_ver ("v1"): not passed on purpose.
            session_info = CSCServiceSessionInfo(args.url, args.credential, oauth_token=token)
        else:
            session_info = CSCServiceSessionInfo(args.url, args.credential, oauth_token=token, api_ver=args.api)
        if session_info.api_ver != args.api:
            raise Failed(f"pyHanko's session uses api_ver {session_info.api_ver!r}, not {args.api!r}")
        cred = await fetch_certs_in_csc_credential(session, session_info)
        summary["hash_pinning_required"] = cred.hash_pinning_required
        summary["max_batch_size"] = cred.max_batch_size
        summary["supported_mechanisms"] = sorted(cred.supported_mechanisms)
        summary["chain_length"] = 1 + len(cred.chain)
        auth = QuillAuthorizationManager(session, session_info, cred, args.pin, args.totp_secret)
        signer = RecordingCSCSigner(session, auth, prefer_pss=args.pss)
        meta = signers.PdfSignatureMetadata(
            field_name=args.field,
            md_algorithm=args.digest,
            subfilter=fields.SigSeedSubFilter.PADES,
            reason="Quill pyHanko interop test",
        )
        out = io.BytesIO()
        try:
            await signers.async_sign_pdf(
                IncrementalPdfFileWriter(io.BytesIO(pdf_in)), meta, signer, output=out,
                bytes_reserved=args.bytes_reserved,
                timestamper=(
                    HTTPTimeStamper(args.tsa, timeout=30) if args.tsa else None
                ),
            )
        except SigningError as e:
            raise Failed(f"pyHanko could not sign: {e}; " + "; ".join(auth.errors)) from e
        signed = out.getvalue()
        with open(args.out, "wb") as f:
            f.write(signed)
        summary["out"] = args.out

        # What went over the wire, as pyHanko built it.
        summary["authorize_requests"] = auth.requests
        summary["expires_in"] = auth.expires_in
        summary["sign_hash_requests"] = [
            {k: (v if k in ("hashAlgo", "signAlgo", "hash") else "…") for k, v in r.items()}
            for r in signer.sign_requests
        ]
        sent_sads = [r.get("SAD") for r in signer.sign_requests]
        summary["sad_from_quill"] = bool(sent_sads) and len(sent_sads) == len(auth.sads) and all(
            s == q for s, q in zip(sent_sads, auth.sads)
        )
        if not summary["sad_from_quill"]:
            failures.append("the SAD in signHash is not the one credentials/authorize returned")

        # Validation with pyHanko, trusting only the given root.
        reader = PdfFileReader(io.BytesIO(signed))
        ours = [e for e in reader.embedded_signatures if e.field_name == args.field]
        if len(ours) != 1:
            raise Failed(f"expected 1 signature in field {args.field}, found {len(ours)}")
        emb = ours[0]
        vc = ValidationContext(trust_roots=[trust_root], allow_fetching=False, revocation_mode="soft-fail")
        status = await async_validate_pdf_signature(
            emb, signer_validation_context=vc, ts_validation_context=vc
        )
        ts = status.timestamp_validity
        summary["timestamp"] = None if ts is None else {
            "intact": ts.intact,
            "valid": ts.valid,
            "trusted": ts.trusted,
            "tsa_subject": ts.signing_cert.subject.human_friendly,
        }
        if args.tsa:
            if ts is None:
                failures.append("PAdES-B-T asked, but the signature has no signature time-stamp")
            elif not (ts.intact and ts.valid and ts.trusted):
                failures.append(f"signature time-stamp not intact/valid/trusted: {summary['timestamp']}")
        summary["validation"] = {
            "intact": status.intact,
            "valid": status.valid,
            "trusted": status.trusted,
            "bottom_line": status.bottom_line,
            "coverage": status.coverage.name if status.coverage else None,
            "signing_cert_subject": status.signing_cert.subject.human_friendly,
        }
        false = [k for k in ("intact", "valid", "trusted", "bottom_line") if not summary["validation"][k]]
        if false:
            failures.append(f"pyHanko validation: {', '.join(false)} false\n{status.pretty_print_details()}")

        # PAdES-B-B shape of the CMS.
        sd = emb.signed_data
        si = sd["signer_infos"][0]
        attrs = {a["type"].native for a in si["signed_attrs"]}
        subfilter = str(emb.sig_object.get("/SubFilter"))
        unsigned = si["unsigned_attrs"]
        summary["pades"] = {
            "subfilter": subfilter,
            "signed_attrs": sorted(attrs),
            "unsigned_attrs": sorted(a["type"].native for a in unsigned) if unsigned.native else [],
        }
        if subfilter != "/ETSI.CAdES.detached":
            failures.append(f"SubFilter is {subfilter}, not /ETSI.CAdES.detached")
        for need in ("content_type", "message_digest", "signing_certificate_v2"):
            if need not in attrs:
                failures.append(f"signed attribute {need} missing (PAdES-B-B)")
        if "signing_time" in attrs:
            failures.append("PAdES-B-B forbids the signing-time signed attribute")

        # The signature value, checked without pyHanko against the credential's certificate.
        cert_der = cred.signing_cert.dump()
        embedded = [c.chosen.dump() for c in sd["certificates"]]
        if cert_der not in embedded:
            failures.append("the credential's certificate is not in the CMS")
        if status.signing_cert.dump() != cert_der:
            failures.append("pyHanko validated another signer certificate")
        digest_name = si["digest_algorithm"]["algorithm"].native
        tbs = signed_attrs_der(si)
        sig = si["signature"].native
        h = hashlib.new(digest_name, tbs).digest()
        sent = [hh for r in signer.sign_requests for hh in r.get("hash", [])]
        summary["hash_sent_is_signed_attrs_digest"] = base64.b64encode(h).decode() in sent
        if not summary["hash_sent_is_signed_attrs_digest"]:
            failures.append("the hash sent to signHash is not the digest of the signed attributes")
        algo = si["signature_algorithm"]
        try:
            verify_locally(cert_der, algo, digest_name, tbs, sig)
            summary["local_verify"] = True
        except (InvalidSignature, ValueError):
            summary["local_verify"] = False
            failures.append("the signature does not verify with the credential's certificate")
        summary["digest_algorithm"] = DIGESTS[digest_name][0]
        summary["signature_algorithm"] = algo["algorithm"].dotted
        summary["pss_salt"] = algo["parameters"]["salt_length"].native if algo["algorithm"].native == "rsassa_pss" else None
        summary["signer_cert"] = base64.b64encode(cert_der).decode()
        summary["signed_attrs"] = base64.b64encode(tbs).decode()
        summary["signature"] = base64.b64encode(sig).decode()

    summary["ok"] = not failures
    summary["failures"] = failures
    return summary


async def dev_ca(args) -> str:
    async with aiohttp.ClientSession() as session:
        token = await login(session, args.url, args.api, args.user, args.password)
        info = await csc_post(
            session,
            f"{args.url}/csc/{args.api}/credentials/info",
            json_body={"credentialID": args.credential, "certificates": "chain"},
            headers={"Authorization": f"Bearer {token}"},
        )
    certs = [cx509.load_der_x509_certificate(base64.b64decode(c)) for c in info["cert"]["certificates"]]
    if len(certs) < 2:
        raise Failed("credentials/info returned no CA certificate in the chain")
    ca, issued = certs[-1], certs[-2]
    try:
        ca.verify_directly_issued_by(ca)
        issued.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise Failed(f"the last certificate of the chain is not a self-signed CA that issued the one before it: {e}")
    if not ca.extensions.get_extension_for_class(cx509.BasicConstraints).value.ca:
        raise Failed("the last certificate of the chain is not a CA certificate")
    from cryptography.hazmat.primitives.serialization import Encoding

    return ca.public_bytes(Encoding.PEM).decode()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--url", required=True, help="Quill's base URL (before /csc/v1 or /csc/v2)")
        sp.add_argument("--user", required=True)
        sp.add_argument("--password", default=os.environ.get("QUILL_PASSWORD"), help="or QUILL_PASSWORD")
        sp.add_argument("--credential", required=True, help="credential ID")
        sp.add_argument("--api", choices=["v1", "v2"], default="v1", help="CSC API path (pyHanko's default: v1)")

    s = sub.add_parser("sign", help="sign a PDF with pyHanko's CSCSigner and validate it")
    common(s)
    s.add_argument("--pin", default=os.environ.get("QUILL_PIN"), help="or QUILL_PIN")
    s.add_argument("--totp-secret", default=os.environ.get("QUILL_TOTP_SECRET"), help="base32; or QUILL_TOTP_SECRET")
    s.add_argument("--pss", action="store_true", help="RSA keys: RSASSA-PSS (pyHanko's prefer_pss)")
    s.add_argument("--tsa", default=None, help="RFC 3161 time-stamp URL, e.g. Quill's http://…/tsa: PAdES-B-T")
    s.add_argument("--bytes-reserved", type=int, default=None, help="space for the signature container in the PDF (default: pyHanko's estimate)")
    s.add_argument("--digest", choices=sorted(DIGESTS), default="sha256")
    s.add_argument("--trust-root", required=True, help="the development CA (PEM or DER), e.g. from `dev-ca`")
    s.add_argument("--input", help="PDF to sign (default: a one-page PDF made here)")
    s.add_argument("--field", default="Sig1", help="signature field to create (default Sig1)")
    s.add_argument("--out", required=True, help="where to write the signed PDF")

    d = sub.add_parser("dev-ca", help="print the development CA certificate (PEM) from credentials/info")
    common(d)
    d.add_argument("--out", help="write the PEM here instead of stdout")

    args = p.parse_args()
    missing = [n for n in ("password", "pin", "totp_secret") if hasattr(args, n) and not getattr(args, n)]
    if missing:
        p.error("missing: " + ", ".join("--" + n.replace("_", "-") for n in missing))
    args.url = args.url.rstrip("/")
    try:
        if args.command == "dev-ca":
            text = asyncio.run(dev_ca(args))
            if args.out:
                with open(args.out, "w") as f:
                    f.write(text)
            else:
                sys.stdout.write(text)
            return 0
        summary = asyncio.run(sign(args))
    except (Failed, SigningError, aiohttp.ClientError) as e:
        cause = f" (cause: {e.__cause__!r})" if e.__cause__ else ""
        print(f"pyhanko_sign: {type(e).__name__}: {e}{cause}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    for f in summary["failures"]:
        print(f"pyhanko_sign: FAILED: {f}", file=sys.stderr)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
