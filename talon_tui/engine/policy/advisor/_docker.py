"""Advisor rules for docker.run: images, network, mounts, signatures. `advisor.lint` calls them."""

from __future__ import annotations

import posixpath

from .. import checks
from ..models import DockerConstraints, Override
from ._base import (
    LARGE_OUTPUT_BYTES,
    Advice,
    inside,
    make_advice,
    max_bytes_advice,
    tighten,
)


def advise_docker(
    index: int, o: Override, c: DockerConstraints, workspace: str | None
) -> list[Advice]:
    out: list[Advice] = []
    for image in c.images:
        if not checks.image_is_pinned(image):
            out.append(
                make_advice(
                    "warn",
                    index,
                    "constraints.images",
                    f"image {image!r} is named by tag; the broker runs nothing for it",
                    "A tag can be moved to different content at any time, so Talon only "
                    "runs images pinned by digest: this entry allows nothing, and pinning "
                    "it later without checking the digest would trust whatever the tag "
                    "points to then.",
                    f"Pin it: `docker image inspect --format '{{{{.Id}}}}' {image}` gives "
                    "the image id (sha256:…); list that, or name@sha256:<digest>.",
                )
            )
    if c.network:
        out.append(
            make_advice(
                "danger" if o.approval == "never" else "warn",
                index,
                "constraints.network",
                "containers get network access",
                "With a network the container can send its input, and anything it can "
                "read, to any server, and reach services on your local network.",
                "Keep network false; pass data in through input and take results from stdout.",
                tighten(o, network=False),
            )
        )
    for mount in c.mounts:
        where = mount.source
        outside = workspace is not None and not inside(where, workspace)
        if not mount.read_only:
            out.append(
                make_advice(
                    "danger",
                    index,
                    "constraints.mounts",
                    f"mount {mount.source} -> {mount.target} is writable",
                    "A container that can write host files can plant code or change "
                    "configuration that runs later outside the container.",
                    "Mount read-only, or return results on stdout and let file.write "
                    "(confined and audited) store them.",
                    tighten(
                        o,
                        mounts=[
                            {**m.model_dump(mode="json"), "read_only": True}
                            if m is mount
                            else m.model_dump(mode="json")
                            for m in c.mounts
                        ],
                    ),
                )
            )
        else:
            out.append(
                make_advice(
                    "danger" if outside or posixpath.normpath(where) == "/" else "warn",
                    index,
                    "constraints.mounts",
                    f"mount {mount.source} -> {mount.target} (read-only)"
                    + (" is outside the workspace" if outside else ""),
                    "Everything under the mounted directory is readable by the container, "
                    "and with a network it can be sent anywhere.",
                    "Pass the data the skill needs as input instead of mounting a directory.",
                    tighten(
                        o,
                        mounts=[m.model_dump(mode="json") for m in c.mounts if m is not mount],
                    ),
                )
            )
    if not c.require_signed:
        out.append(
            make_advice(
                "warn",
                index,
                "constraints.require_signed",
                "images run without a verified skill signature",
                "Any listed image runs, whoever built it; a signature ties the image to a "
                "publisher key you trust.",
                "Register skills with a signature and set require_signed: true.",
                tighten(o, require_signed=True),
            )
        )
    if o.approval == "never":
        out.append(
            make_advice(
                "warn",
                index,
                "approval",
                "containers start without any operator seeing them",
                "Even a skill requested by another skill's output (untrusted origin) runs "
                "unattended.",
                "Use approval 'untrusted' (the default) or 'always'.",
                tighten(o, approval="always"),
            )
        )
    out.extend(
        max_bytes_advice(index, o, c.max_output_bytes, "max_output_bytes", LARGE_OUTPUT_BYTES)
    )
    return out
