"""Provenance inside figure files: PDF document information, SVG ``<metadata>``, PNG text chunks.

Each function takes a rendered file's bytes and a :class:`crmn_viz.provenance.Provenance` and
returns the bytes with the provenance inside, in the place that format's readers look:

* PDF: ``/Title`` (figure and checkpoint), ``/Subject`` (one line on what made it),
  ``/Keywords`` (checkpoint, digests, settings), ``/Creator`` (crmn-viz and its version) and
  ``/CrmnVizProvenance`` (the full JSON), in the document information dictionary.
* SVG: ``<title>`` and a ``<metadata>`` element holding the JSON, first in the root element.
* PNG: ``iTXt`` chunks ``Title``, ``Description``, ``Software`` and ``crmn-viz:provenance``
  (the JSON), before ``IEND``.
* HTML: ``<title>`` and ``<meta name="crmn-viz:provenance" content="...">`` in the head.

:func:`read_provenance` reads the JSON back from any of them.
"""

from __future__ import annotations

import html
import io
import json
import logging
import re
import struct
import zlib
from collections.abc import Callable
from typing import Any

from crmn_viz.provenance import PROVENANCE_KEY, Provenance

__all__ = ["embed_provenance", "read_provenance"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PDF_KEY = "/CrmnVizProvenance"


def embed_provenance(content: bytes, file_format: str, provenance: Provenance, figure_name: str) -> bytes:
    """``content`` (a rendered ``pdf``, ``svg``, ``png`` or ``html`` file) with ``provenance`` inside.

    Other formats are returned unchanged (the ``.meta.json`` sidecar carries it for them).
    """
    if file_format == "pdf":
        return _pdf_with_provenance(content, provenance, figure_name)
    if file_format == "svg":
        return _svg_with_provenance(content, provenance, figure_name)
    if file_format == "png":
        return _png_with_provenance(content, provenance, figure_name)
    if file_format == "html":
        return _html_with_provenance(content, provenance, figure_name)
    return content


def read_provenance(content: bytes, file_format: str) -> dict[str, Any] | None:
    """The provenance JSON embedded by :func:`embed_provenance`, or None when there is none."""
    if file_format == "pdf":
        from pypdf import PdfReader

        info = PdfReader(io.BytesIO(content)).metadata or {}
        text = info.get(_PDF_KEY)
        return json.loads(str(text)) if text else None
    if file_format == "png":
        text = png_text_chunks(content).get(PROVENANCE_KEY)
        return json.loads(text) if text else None
    decoded = content.decode("utf-8")
    if file_format == "svg":
        match = re.search(r"<crmnviz:provenance[^>]*>(.*?)</crmnviz:provenance>", decoded, re.S)
    elif file_format == "html":
        match = re.search(rf'<meta name="{PROVENANCE_KEY}" content="([^"]*)"', decoded)
    else:
        return None
    return json.loads(html.unescape(match.group(1))) if match else None


# --------------------------------------------------------------------------- PDF


def _pdf_with_provenance(pdf: bytes, provenance: Provenance, figure_name: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)  # Chrome's trailers draw harmless "object count" warnings
    try:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    finally:
        pypdf_log.setLevel(level)
    writer.add_metadata(
        {
            "/Title": provenance.title(figure_name),
            "/Subject": provenance.subject(),
            "/Keywords": "; ".join(provenance.keywords()),
            "/Creator": f"crmn-viz {provenance.crmn_viz_version}",
            "/Author": f"crmn-viz {provenance.crmn_viz_version} ({provenance.checkpoint})",
            _PDF_KEY: provenance.to_json(),
        }
    )
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------- SVG


def edit_first_tag(document: bytes, tag_pattern: str, edit: Callable[[str], str]) -> bytes:
    """``document`` (UTF-8 markup) with the first tag matching ``tag_pattern`` replaced by ``edit(tag)``.

    Unchanged when no tag matches (a file that is not the markup it claims stays as it is).
    """
    text = document.decode("utf-8")
    found = re.search(tag_pattern, text)
    if found is None:
        return document
    return (text[: found.start()] + edit(found.group(0)) + text[found.end() :]).encode("utf-8")


def _svg_with_provenance(svg: bytes, provenance: Provenance, figure_name: str) -> bytes:
    block = (
        f"<title>{html.escape(provenance.title(figure_name))}</title>"
        f"<desc>{html.escape(provenance.subject())}</desc>"
        '<metadata><crmnviz:provenance xmlns:crmnviz="https://github.com/crmn-viz/crmn-viz#provenance">'
        f"{html.escape(provenance.to_json(), quote=False)}</crmnviz:provenance></metadata>"
    )
    return edit_first_tag(svg, r"<svg\b[^>]*>", lambda tag: tag + block)


# --------------------------------------------------------------------------- PNG


def png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    """One PNG chunk (PNG spec 5.3): length, 4-byte type, payload, CRC-32 of type and payload."""
    crc = zlib.crc32(chunk_type + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + chunk_type + payload + struct.pack(">I", crc)


def _itxt_chunk(keyword: str, text: str) -> bytes:
    """An uncompressed international text chunk (PNG spec 11.3.4.5): UTF-8 text under a keyword."""
    # keyword NUL, compression flag 0 and method 0, empty language tag NUL, empty translation NUL
    header = keyword.encode("latin-1") + b"\0" + b"\0\0" + b"\0" + b"\0"
    return png_chunk(b"iTXt", header + text.encode("utf-8"))


def _png_with_provenance(png: bytes, provenance: Provenance, figure_name: str) -> bytes:
    if not png.startswith(_PNG_SIGNATURE) or not png.endswith(b"IEND\xaeB`\x82"):
        return png
    chunks = b"".join(
        _itxt_chunk(keyword, text)
        for keyword, text in (
            ("Title", provenance.title(figure_name)),
            ("Description", provenance.subject()),
            ("Software", f"crmn-viz {provenance.crmn_viz_version}"),
            (PROVENANCE_KEY, provenance.to_json()),
        )
    )
    iend = len(png) - 12  # the IEND chunk: length (0), type, CRC
    return png[:iend] + chunks + png[iend:]


def png_text_chunks(png: bytes) -> dict[str, str]:
    """The ``tEXt`` and uncompressed ``iTXt`` chunks of a PNG, keyword -> text."""
    texts: dict[str, str] = {}
    position = len(_PNG_SIGNATURE)
    while position + 8 <= len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        body = png[position + 8 : position + 8 + length]
        if kind == b"tEXt":
            keyword, _, text = body.partition(b"\0")
            texts[keyword.decode("latin-1")] = text.decode("latin-1")
        elif kind == b"iTXt":
            keyword, _, rest = body.partition(b"\0")
            compressed = rest[0]
            _language, _, rest = rest[2:].partition(b"\0")
            _translated, _, text = rest.partition(b"\0")
            texts[keyword.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode("utf-8")
        position += 12 + length
    return texts


# --------------------------------------------------------------------------- HTML


def _html_with_provenance(page: bytes, provenance: Provenance, figure_name: str) -> bytes:
    tags = (
        f"<title>{html.escape(provenance.title(figure_name))}</title>"
        f'<meta name="description" content="{html.escape(provenance.subject())}">'
        f'<meta name="{PROVENANCE_KEY}" content="{html.escape(provenance.to_json())}">'
    )
    return edit_first_tag(page, r"<head[^>]*>", lambda tag: tag + tags)
