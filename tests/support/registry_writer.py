"""Write images straight to a local test registry over its HTTP API, without the engine.

Tests use `RegistryWriter` to put exactly the manifests they need under a tag: Docker v2 or
OCI image manifests, and Docker manifest lists or OCI indexes with amd64 and arm64 entries and
a BuildKit-style attestation entry. Each image has a one-file gzip layer and a config whose
content includes its platform and a `marker`, so config digests differ per platform and per
marker. With `base=`, the layers of an image already in the registry (e.g. the shared busybox
test image) are mounted under the new image first, so the engine can pull and run it.

Blobs are uploaded monolithically: POST to start an upload, then one PUT with the digest.
Only the 127.0.0.1 test registries are written to. Repositories should be named under the
test's unique prefix; `delete_pushed` removes the manifests the writer put.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IN_TOTO = "application/vnd.in-toto+json"

ATTESTATION_ANNOTATIONS = "vnd.docker.reference.type", "vnd.docker.reference.digest"

# A fixed timestamp keeps configs, and so image ids, the same for the same inputs.
CREATED = "2026-01-01T00:00:00Z"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: the media type, digest and size a manifest refers to."""

    media_type: str
    digest: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class PushedImage:
    """An image manifest written to the registry, with its config and platform."""

    manifest: Descriptor
    config: Descriptor
    platform: dict[str, str]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def config_digest(self) -> str:
        """Config digest, i.e. the image id the engine gives the image after a pull."""
        return self.config.digest


@dataclass
class RegistryWriter:
    """A small registry API client for tests: blobs, manifests and indexes, with Basic auth."""

    base_url: str
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0
    pushed: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        auth = (self.username, self.password) if self.username is not None else None
        self._http = httpx.Client(
            base_url=self.base_url, auth=auth, timeout=self.timeout, trust_env=False
        )

    def __enter__(self) -> RegistryWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- blobs and manifests ----------------------------------------------------------------

    def push_blob(self, repository: str, data: bytes, media_type: str) -> Descriptor:
        """Upload `data` as a blob in one request after the upload is started."""
        digest = sha256_digest(data)
        started = self._http.post(f"/v2/{repository}/blobs/uploads/")
        _expect(started, 202, f"start a blob upload in {repository}")

        # The Location may be relative and may already carry query parameters (upload state).
        location = httpx.URL(self.base_url).join(started.headers["Location"])
        finished = self._http.put(
            location.copy_merge_params({"digest": digest}),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        _expect(finished, 201, f"upload blob {digest} to {repository}")
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def mount_blob(self, repository: str, descriptor: Descriptor, *, source: str) -> None:
        """Link a blob of `source` into `repository` without copying it (cross-repository mount)."""
        response = self._http.post(
            f"/v2/{repository}/blobs/uploads/",
            params={"mount": descriptor.digest, "from": source},
        )
        _expect(response, 201, f"mount blob {descriptor.digest} from {source} into {repository}")

    def push_manifest(
        self, repository: str, reference: str, body: bytes, media_type: str
    ) -> Descriptor:
        """PUT a manifest under a tag (or its digest) and check the digest the registry reports."""
        response = self._http.put(
            f"/v2/{repository}/manifests/{reference}",
            content=body,
            headers={"Content-Type": media_type},
        )
        _expect(response, 201, f"put manifest {reference} in {repository}")

        digest = sha256_digest(body)
        reported = response.headers.get("Docker-Content-Digest")
        if reported != digest:
            raise AssertionError(
                f"registry reported digest {reported} for a manifest of digest {digest}"
            )
        self.pushed.append((repository, digest))
        return Descriptor(media_type=media_type, digest=digest, size=len(body))

    def get_manifest(
        self, repository: str, reference: str, accept: Sequence[str]
    ) -> tuple[str, dict[str, Any]]:
        response = self._http.get(
            f"/v2/{repository}/manifests/{reference}", headers={"Accept": ", ".join(accept)}
        )
        _expect(response, 200, f"get manifest {reference} of {repository}")
        return response.headers["Content-Type"], response.json()

    def get_blob(self, repository: str, digest: str) -> bytes:
        response = self._http.get(f"/v2/{repository}/blobs/{digest}", follow_redirects=True)
        _expect(response, 200, f"get blob {digest} of {repository}")
        return response.content

    def delete_pushed(self) -> None:
        """Delete every manifest this writer put; already deleted ones are ignored."""
        for repository, digest in reversed(self.pushed):
            response = self._http.delete(f"/v2/{repository}/manifests/{digest}")
            if response.status_code not in (202, 404):
                _expect(response, 202, f"delete manifest {digest} of {repository}")
        self.pushed.clear()

    # -- images -----------------------------------------------------------------------------

    def push_image(
        self,
        repository: str,
        *,
        tag: str | None = None,
        architecture: str = "amd64",
        os: str = "linux",
        variant: str | None = None,
        marker: str = "1",
        oci: bool = False,
        base: str | None = None,
    ) -> PushedImage:
        """Push an image for a platform with one marker layer; returns its descriptors.

        `marker` goes into the layer's file, an env variable and a label, so two images that
        differ only in their marker have different config digests. `base` is
        `REPOSITORY:TAG` of a Docker v2 image in the same registry whose layers, Env and Cmd
        come first. Without a tag the manifest is put by digest only, as an index entry.
        """
        if oci:
            layer_type, config_type, manifest_type = OCI_LAYER, OCI_CONFIG, OCI_MANIFEST
        else:
            layer_type, config_type, manifest_type = DOCKER_LAYER, DOCKER_CONFIG, DOCKER_MANIFEST
        platform = {"architecture": architecture, "os": os}
        if variant:
            platform["variant"] = variant

        layers: list[Descriptor] = []
        diff_ids: list[str] = []
        env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        cmd: list[str] = ["/marker"]
        if base is not None:
            base_layers, base_diff_ids, base_config = self._base_image(base)
            for descriptor in base_layers:
                self.mount_blob(repository, descriptor, source=base.rsplit(":", 1)[0])
            layers += [Descriptor(layer_type, item.digest, item.size) for item in base_layers]
            diff_ids += base_diff_ids
            env = list(base_config.get("Env") or env)
            cmd = list(base_config.get("Cmd") or cmd)

        layer_tar = _marker_tar(marker, platform)
        layer = gzip.compress(layer_tar, mtime=0)
        layers.append(self.push_blob(repository, layer, layer_type))
        diff_ids.append(sha256_digest(layer_tar))

        config = {
            **platform,
            "created": CREATED,
            "config": {
                "Env": env + [f"DOCKWRIGHT_MARKER={marker}"],
                "Cmd": cmd,
                "Labels": {"dockwright.test.marker": marker},
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": CREATED, "created_by": f"registry_writer marker={marker}"}],
        }
        config_descriptor = self.push_blob(repository, _canonical_json(config), config_type)

        manifest = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config_descriptor.as_dict(),
            "layers": [descriptor.as_dict() for descriptor in layers],
        }
        body = _canonical_json(manifest)
        manifest_descriptor = self.push_manifest(
            repository, tag or sha256_digest(body), body, manifest_type
        )
        return PushedImage(manifest=manifest_descriptor, config=config_descriptor, platform=platform)

    def push_attestation(self, repository: str, *, subject: PushedImage) -> Descriptor:
        """Push a provenance-style attestation manifest for `subject`, as BuildKit attaches one."""
        statement = {
            "_type": "https://in-toto.io/Statement/v0.1",
            "subject": [{"name": repository, "digest": {"sha256": subject.digest.split(":", 1)[1]}}],
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "predicate": {"builder": {"id": "dockwright-tests"}},
        }
        statement_blob = self.push_blob(repository, _canonical_json(statement), IN_TOTO)
        config = {
            "architecture": "unknown",
            "os": "unknown",
            "rootfs": {"type": "layers", "diff_ids": []},
        }
        config_blob = self.push_blob(repository, _canonical_json(config), OCI_CONFIG)

        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_blob.as_dict(),
            "layers": [
                {
                    **statement_blob.as_dict(),
                    "annotations": {"in-toto.io/predicate-type": statement["predicateType"]},
                }
            ],
        }
        body = _canonical_json(manifest)
        return self.push_manifest(repository, sha256_digest(body), body, OCI_MANIFEST)

    def push_index(
        self,
        repository: str,
        *,
        tag: str,
        images: Sequence[PushedImage],
        oci: bool = True,
        attestation: bool = True,
    ) -> Descriptor:
        """Push an index (OCI) or manifest list (Docker) of `images` under `tag`.

        With `attestation`, an attestation entry for the first image is added last, with
        platform unknown/unknown and the `vnd.docker.reference.type` annotation, as BuildKit
        writes it.
        """
        index_type = OCI_INDEX if oci else DOCKER_MANIFEST_LIST
        entries = [{**image.manifest.as_dict(), "platform": image.platform} for image in images]

        if attestation and images:
            attestation_manifest = self.push_attestation(repository, subject=images[0])
            entries.append(
                {
                    **attestation_manifest.as_dict(),
                    "platform": {"architecture": "unknown", "os": "unknown"},
                    "annotations": {
                        ATTESTATION_ANNOTATIONS[0]: "attestation-manifest",
                        ATTESTATION_ANNOTATIONS[1]: images[0].digest,
                    },
                }
            )

        index = {"schemaVersion": 2, "mediaType": index_type, "manifests": entries}
        return self.push_manifest(repository, tag, _canonical_json(index), index_type)

    def _base_image(self, base: str) -> tuple[list[Descriptor], list[str], dict[str, Any]]:
        """Read the layers, diff ids and runtime config of a Docker v2 image in this registry."""
        repository, _, tag = base.rpartition(":")
        _, manifest = self.get_manifest(repository, tag, [DOCKER_MANIFEST, OCI_MANIFEST])
        config = json.loads(self.get_blob(repository, manifest["config"]["digest"]))

        layers = [
            Descriptor(item["mediaType"], item["digest"], item["size"]) for item in manifest["layers"]
        ]
        return layers, list(config["rootfs"]["diff_ids"]), config.get("config") or {}


def _canonical_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _marker_tar(marker: str, platform: dict[str, str]) -> bytes:
    """Build an uncompressed tar with one file, `/marker`, with fixed metadata."""
    content = f"marker={marker} platform={'/'.join(platform.values())}\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("marker")
        info.size = len(content)
        info.mtime = 0
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _expect(response: httpx.Response, status: int, action: str) -> None:
    if response.status_code != status:
        raise AssertionError(
            f"registry failed to {action}: expected HTTP {status}, got {response.status_code}: "
            f"{response.text[:500]}"
        )
