"""A small client for the few endpoints of the OCI distribution API that venvlayers uses.

Why not oras-py: its uploads give no HEAD check and no cross-repository mount, a monolithic
upload reads the whole blob into memory, downloads neither resume nor check the digest,
and errors end the process through its logger. The endpoints needed here are few (see
docs/registries.md), so this module speaks them over ``http.client``: blobs stream from
and to files in 1 MiB blocks, whatever their size.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from venvlayers.oci.auth import Credentials, docker_config_path, find_credentials
from venvlayers.oci.errors import OciError, OciInterrupted
from venvlayers.oci.ref import OciRef

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)

BLOCK = 1 << 20
# Manifests and configs are read whole; a registry serving more is not trusted with memory.
SMALL_LIMIT = 16 << 20
_REDIRECTS = (301, 302, 303, 307, 308)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class Counters:
    """What crossed the network, for reports and for tests that prove what was skipped."""

    requests: int = 0
    bytes_down: int = 0
    bytes_up: int = 0
    blobs_down: list[str] = field(default_factory=list)


@dataclass
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    stream: http.client.HTTPResponse | None = None
    connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """One registry host; requests authenticate lazily, as the registry's challenge asks."""

    def __init__(self, ref: OciRef, *, timeout: float = 60.0) -> None:
        self.host = ref.host
        self.scheme = "http" if ref.insecure else "https"
        self.timeout = timeout
        self.counters = Counters()
        self._authorization: str | None = None
        self._credentials: Credentials | None = None
        self._credentials_loaded = False

    # -- transport -------------------------------------------------------------------

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(
                netloc, timeout=self.timeout, blocksize=BLOCK, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(netloc, timeout=self.timeout, blocksize=BLOCK)

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | IO[bytes] | None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        parts = urllib.parse.urlsplit(url)
        scheme, netloc = parts.scheme or self.scheme, parts.netloc or self.host
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        connection = self._connection(scheme, netloc)
        self.counters.requests += 1
        try:
            connection.request(method, target, body=body, headers=dict(headers))
            return connection, connection.getresponse()
        except socket.gaierror as exc:
            connection.close()
            raise OciError(
                f"{netloc}: unknown host ({exc.strerror}); check the registry address"
            ) from None
        except ConnectionRefusedError:
            connection.close()
            raise OciError(
                f"{netloc}: connection refused; is the registry running at that address?"
            ) from None
        except ssl.SSLError as exc:
            connection.close()
            raise OciError(
                f"{netloc}: TLS failed ({exc.reason or exc}); the registry must serve HTTPS"
                " with a certificate this host trusts (plain HTTP is used only for loopback)"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise OciError(
                f"{netloc}: cannot reach the registry ({exc or type(exc).__name__});"
                " check the address and the network, then run again"
            ) from None

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | IO[bytes] | None = None,
        ok: Sequence[int] = (200,),
        stream: bool = False,
        limit: int = SMALL_LIMIT,
    ) -> _Reply:
        """One request, authenticated on the registry's first 401, redirects followed.

        ``what`` names the thing asked for in every error message.
        """
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        for attempt in range(2):
            sent = dict(headers or {})
            on_registry = "://" not in url or urllib.parse.urlsplit(url).netloc == self.host
            if self._authorization and on_registry:
                sent["Authorization"] = self._authorization
            if body is not None and not isinstance(body, bytes):
                body.seek(start)
            connection, response = self._send(method, url, sent, body)
            for _hop in range(5):
                if response.status not in _REDIRECTS or method not in ("GET", "HEAD"):
                    break
                location = response.getheader("Location") or ""
                response.read()
                connection.close()
                # Blob storage behind a redirect (S3, a CDN) must not see registry credentials.
                here = url if "://" in url else f"{self.scheme}://{self.host}{url}"
                url = urllib.parse.urljoin(here, location)
                connection, response = self._send(method, url, dict(headers or {}), None)
            if response.status == 401 and attempt == 0:
                challenge = response.getheader("WWW-Authenticate") or ""
                response.read()
                connection.close()
                self._authenticate(challenge, what)
                continue
            break
        if response.status not in ok:
            text = response.read(SMALL_LIMIT) if method != "HEAD" else b""
            connection.close()
            raise self._failure(response.status, response.reason, text, what)
        if stream:
            return _Reply(response.status, _headers(response), b"", response, connection)
        data = response.read(limit + 1) if method != "HEAD" else b""
        connection.close()
        if len(data) > limit:
            raise OciError(f"{what}: the registry sent more than {limit} bytes; refused")
        self.counters.bytes_down += len(data)
        return _Reply(response.status, _headers(response), data)

    # -- authentication --------------------------------------------------------------

    def _stored_credentials(self) -> Credentials | None:
        if not self._credentials_loaded:
            self._credentials = find_credentials(self.host)
            self._credentials_loaded = True
        return self._credentials

    def _authenticate(self, challenge: str, what: str) -> None:
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        credentials = self._stored_credentials()
        if scheme.lower() == "basic":
            if credentials is None:
                raise self._no_credentials()
            self._authorization = credentials.basic_header()
            return
        if scheme.lower() != "bearer" or "realm" not in params:
            raise OciError(
                f"{what}: the registry {self.host} asks for an authentication scheme"
                f" venvlayers does not speak ({challenge or 'none given'})"
            )
        query = urllib.parse.urlencode(
            {key: params[key] for key in ("service", "scope") if key in params}
        )
        realm = params["realm"]
        url = f"{realm}{'&' if '?' in realm else '?'}{query}" if query else realm
        headers = {"Authorization": credentials.basic_header()} if credentials else {}
        connection, response = self._send("GET", url, headers, None)
        data = response.read(SMALL_LIMIT)
        connection.close()
        if response.status in (401, 403):
            raise self._no_credentials() if credentials is None else self._refused(credentials)
        if response.status != 200:
            raise OciError(
                f"{self.host}: the token service {realm} answered {response.status}"
                f" {response.reason}; try again later"
            )
        try:
            answer = json.loads(data)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise OciError(f"{self.host}: the token service {realm} gave no token")
        self._authorization = f"Bearer {token}"

    def _no_credentials(self) -> OciError:
        return OciError(
            f"{self.host}: the registry asks for credentials and none are stored for it;"
            f" log in (`podman login {self.host}` or `docker login {self.host}`) or add them"
            f" to {docker_config_path()}"
        )

    def _refused(self, credentials: Credentials) -> OciError:
        return OciError(
            f"{self.host}: the registry refused the stored credentials of user"
            f" {credentials.username!r}; log in again"
        )

    def _failure(self, status: int, reason: str, body: bytes, what: str) -> OciError:
        codes, messages = [], []
        try:
            for entry in json.loads(body).get("errors", []):
                codes.append(str(entry.get("code", "")))
                messages.append(str(entry.get("message", "")))
        except (ValueError, AttributeError, TypeError):
            pass
        detail = f" ({'; '.join(m for m in messages if m)})" if any(messages) else ""
        if status == 401:
            credentials = self._stored_credentials()
            return self._no_credentials() if credentials is None else self._refused(credentials)
        if status == 403:
            return OciError(f"{what}: access denied by {self.host}{detail}; check your rights")
        if status == 404 and "NAME_UNKNOWN" in codes:
            return OciError(f"{what}: no such repository on {self.host}; check the name")
        if status == 404 and ("BLOB_UNKNOWN" in codes or "@sha256:" in what):
            return OciError(f"{what}: the registry does not have this blob; push again")
        if status == 404:
            return OciError(f"{what}: not found on {self.host}; check the name and tag")
        return OciError(f"{what}: {self.host} answered {status} {reason}{detail}")

    # -- the endpoints ---------------------------------------------------------------

    def get_manifest(self, ref: OciRef) -> tuple[bytes, str, str]:
        """The manifest bytes, media type and digest of ``ref`` (the digest is checked)."""
        reply = self.request(
            "GET",
            f"/v2/{ref.repository}/manifests/{ref.reference}",
            what=str(ref),
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        digest = digest_of(reply.body)
        if ref.digest and digest != ref.digest:
            raise OciError(f"{ref}: the registry served a manifest with digest {digest}; refused")
        media_type = reply.headers.get("content-type", "").split(";")[0].strip()
        return reply.body, media_type, digest

    def put_manifest(self, ref: OciRef, data: bytes, media_type: str) -> str:
        reference = ref.tag or digest_of(data)
        self.request(
            "PUT",
            f"/v2/{ref.repository}/manifests/{reference}",
            what=str(ref),
            headers={"Content-Type": media_type, "Content-Length": str(len(data))},
            body=data,
            ok=(200, 201),
        )
        self.counters.bytes_up += len(data)
        return digest_of(data)

    def blob_exists(self, repository: str, digest: str) -> bool:
        reply = self.request(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            what=f"{self.host}/{repository}@{digest}",
            ok=(200, 404),
        )
        return reply.status == 200

    def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Ask the registry to link ``source``'s blob into ``repository``; True if it did."""
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        reply = self.request(
            "POST", f"/v2/{repository}/blobs/uploads/?{query}", body=b"",
            what=f"{self.host}/{repository}@{digest}", headers={"Content-Length": "0"},
            ok=(201, 202),
        )  # fmt: skip
        if reply.status == 201:
            return True
        location = reply.headers.get("location")
        if location:
            # Refused: close the upload session it opened instead.
            self.request("DELETE", location, what=f"{self.host}/{repository}", ok=(204, 404))
        return False

    def push_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        content: Path | bytes,
        *,
        mount_from: Sequence[str] = (),
    ) -> str:
        """Make the registry hold the blob: 'present', 'mounted' or 'uploaded'.

        The registry computes the digest of what it receives and refuses a mismatch, so
        an archive that changed since publishing is never stored under the old digest.
        """
        what = f"{self.host}/{repository}@{digest}"
        if self.blob_exists(repository, digest):
            return "present"
        location = None
        for source in mount_from:
            query = urllib.parse.urlencode({"mount": digest, "from": source})
            reply = self.request(
                "POST", f"/v2/{repository}/blobs/uploads/?{query}", what=what, body=b"",
                headers={"Content-Length": "0"}, ok=(201, 202),
            )  # fmt: skip
            if reply.status == 201:
                return "mounted"
            # Mount refused: the registry opened an upload session instead; use it.
            location = reply.headers.get("location")
            break
        if location is None:
            reply = self.request(
                "POST", f"/v2/{repository}/blobs/uploads/", what=what, body=b"",
                headers={"Content-Length": "0"}, ok=(202,),
            )  # fmt: skip
            location = reply.headers.get("location")
        if not location:
            raise OciError(f"{what}: the registry opened no upload session (no Location)")
        separator = "&" if "?" in location else "?"
        url = f"{location}{separator}{urllib.parse.urlencode({'digest': digest})}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        if isinstance(content, bytes):
            self.request("PUT", url, what=what, headers=headers, body=content, ok=(201,))
        else:
            with content.open("rb") as stream:
                self.request("PUT", url, what=what, headers=headers, body=stream, ok=(201,))
        self.counters.bytes_up += size
        return "uploaded"

    def get_blob_bytes(self, repository: str, digest: str) -> bytes:
        what = f"{self.host}/{repository}@{digest}"
        reply = self.request("GET", f"/v2/{repository}/blobs/{digest}", what=what)
        got = digest_of(reply.body)
        if got != digest:
            raise OciError(f"{what}: the registry served content with digest {got}; refused")
        return reply.body

    def download_blob(
        self, repository: str, digest: str, dest: Path, *, size: int | None = None
    ) -> int:
        """Stream a blob to ``dest``, checked against ``digest``; returns bytes fetched.

        The bytes go to ``dest.partial`` first; an interrupted download leaves it, and the
        next call asks only for the rest (HTTP Range), or starts again when the registry
        does not do ranges. ``dest`` appears only once the digest checks out.
        """
        what = f"{self.host}/{repository}@{digest}"
        partial = dest.with_name(dest.name + ".partial")
        hasher = hashlib.sha256()
        have = 0
        if partial.exists():
            have = partial.stat().st_size
            if size is not None and have > size:
                partial.unlink()
                have = 0
            else:
                with partial.open("rb") as stream:
                    while block := stream.read(BLOCK):
                        hasher.update(block)
        fetched = 0
        if size is None or have < size:
            headers = {"Range": f"bytes={have}-"} if have else {}
            reply = self.request(
                "GET", f"/v2/{repository}/blobs/{digest}", what=what, headers=headers,
                ok=(200, 206), stream=True,
            )  # fmt: skip
            assert reply.stream is not None
            try:
                if reply.status == 200 and have:
                    hasher, have = hashlib.sha256(), 0
                elif reply.status == 206 and not _range_starts_at(reply.headers, have):
                    raise OciError(f"{what}: the registry answered a different range; run again")
                with partial.open("ab" if have else "wb") as out:
                    while block := reply.stream.read(BLOCK):
                        hasher.update(block)
                        out.write(block)
                        fetched += len(block)
                        self.counters.bytes_down += len(block)
                    out.flush()
                    os.fsync(out.fileno())
            except (OSError, http.client.HTTPException) as exc:
                raise OciInterrupted(
                    f"{what}: download interrupted ({exc or type(exc).__name__}); run again"
                    " to resume it"
                ) from None
            finally:
                reply.close()
        got = "sha256:" + hasher.hexdigest()
        if got != digest:
            partial.unlink(missing_ok=True)
            raise OciError(
                f"{what}: the blob served does not match its digest (got {got}); the"
                " registry's copy is damaged: push the stack again"
            )
        os.replace(partial, dest)
        self.counters.blobs_down.append(digest)
        return fetched


def _headers(response: http.client.HTTPResponse) -> dict[str, str]:
    return {key.lower(): value for key, value in response.getheaders()}


def _range_starts_at(headers: Mapping[str, str], offset: int) -> bool:
    match = re.match(r"bytes (\d+)-", headers.get("content-range", ""))
    return match is not None and int(match.group(1)) == offset


def manifest_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise OciError(f"{what}: the registry served a manifest that is not JSON") from None
    if not isinstance(value, dict):
        raise OciError(f"{what}: the registry served a manifest that is not a JSON object")
    return value
