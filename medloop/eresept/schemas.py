"""XSD validation of the envelope and of every document, chosen by namespace.

The official schemas are not shipped: they are read from the configured folder
(``MEDLOOP_ERESEPT_XSD_DIR``, default ``../shared/reference/xsd``) holding ``eresept/`` and
``felleskomponenter/`` as KITH/NHN publish them.  Their imports point at places that do not
exist in that layout (``../../../../kith/src/main/resources/kith.xsd``) or on the network
(MsgHead imports ``http://www.w3.org/TR/xmldsig-core/xmldsig-core-schema.xsd``): a resolver
maps each import to the file of that name in the folder, and the XML-signature schema to the
copy ``signxml`` ships, so nothing is ever fetched.

lxml validates XSD 1.0 only.  The ``*-extension-1.xsd`` schemas are XSD 1.1
(``vc:minVersion="1.1"``); a document in an extension namespace is therefore reported as
"not validated (its schema is XSD 1.1)" rather than validated against a schema lxml would
misread; the base documents are validated against their XSD 1.0 schemas.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from medloop.eresept.errors import Problem, SchemaConfigMissing

MSGHEAD_NS = "http://www.kith.no/xmlstds/msghead/2006-05-24"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
BASE64_CONTAINER_NS = "http://www.kith.no/xmlstds/base64container"
KITH = "http://www.kith.no/xmlstds/eresept"


@dataclass(frozen=True)
class DocumentType:
    """What a namespace is: its message name and the schema file (relative to the XSD
    folder) that validates it; ``schema`` is None when no official XSD for it is published in
    the folder, ``xsd11`` when the official one is XSD 1.1."""

    name: str
    schema: str | None
    xsd11: bool = False


# namespace -> document type.  One table: adding a message version is one line here.
DOCUMENT_TYPES: dict[str, DocumentType] = {
    MSGHEAD_NS: DocumentType("MsgHead", "felleskomponenter/MsgHead-v1_2.xsd"),
    f"{KITH}/m1/2013-10-08": DocumentType("M1", "eresept/ER-M1-2013-10-08.xsd"),
    f"{KITH}/m5/2013-04-16": DocumentType("M5", "eresept/ER-M5-2013-04-16.xsd"),
    f"{KITH}/m10/2013-10-08": DocumentType("M10", "eresept/ER-M10-2013-10-08.xsd"),
    f"{KITH}/utlevering/2013-10-08": DocumentType(
        "Utlevering", "eresept/ER-Utlevering-2013-10-08.xsd"
    ),
    f"{KITH}/m25/2013-10-08": DocumentType("M25", "eresept/ER-M25-2013-10-08.xsd"),
    f"{KITH}/m251/2013-10-08": DocumentType("M25.1", "eresept/ER-M251-2013-10-08.xsd"),
    f"{KITH}/m252/2013-10-08": DocumentType("M25.2", "eresept/ER-M252-2013-10-08.xsd"),
    f"{KITH}/m253/2013-10-08": DocumentType("M25.3", "eresept/ER-M253-2013-10-08.xsd"),
    f"{KITH}/m271/2013-04-16": DocumentType("M27.1", "eresept/ER-M271-2013-04-16.xsd"),
    f"{KITH}/ki/2013-04-25": DocumentType(
        "Kritisk informasjon", "eresept/ER-KritiskInformasjon-2013-04-25.xsd"
    ),
    f"{KITH}/m1/2013-10-08/extension/1": DocumentType(
        "M1 extension 1", "eresept/ER-M1-2013-10-08-extension-1.xsd", xsd11=True
    ),
    f"{KITH}/m251/2013-10-08/extension/1": DocumentType(
        "M25.1 extension 1", "eresept/ER-M251-2013-10-08-extension-1.xsd", xsd11=True
    ),
}

# file names an import may use -> where the file is, relative to the XSD folder
_FOLDERS = ("eresept", "felleskomponenter")
_EMPTY_BASE64_SCHEMA = (
    b'<schema xmlns="http://www.w3.org/2001/XMLSchema" targetNamespace="'
    + BASE64_CONTAINER_NS.encode()
    + b'"/>'
)


def _dsig_schema() -> Path:
    import signxml

    return Path(signxml.__file__).parent / "schemas" / "xmldsig-core-schema.xsd"


class _LocalResolver(etree.Resolver):
    """Every schema import resolves to a local file, by file name; nothing is fetched."""

    def __init__(self, xsd_dir: Path):
        super().__init__()
        self.xsd_dir = xsd_dir

    def resolve(self, url, pubid, context):  # noqa: D102 - lxml's resolver protocol
        name = (url or "").replace("\\", "/").rsplit("/", 1)[-1]
        if name == "xmldsig-core-schema.xsd":
            return self.resolve_filename(str(_dsig_schema()), context)
        if name == "kith-base64.xsd":
            # MsgHead imports the base64 container schema from a path outside the
            # published folders; it declares nothing MsgHead itself uses.
            return self.resolve_string(_EMPTY_BASE64_SCHEMA, context)
        for folder in _FOLDERS:
            candidate = self.xsd_dir / folder / name
            if candidate.is_file():
                return self.resolve_filename(str(candidate), context)
        return None


# compiled schemas, per thread (lxml validators are not to be shared between threads)
_local = threading.local()


def schema_path(xsd_dir: Path | None, doc_type: DocumentType) -> Path:
    if xsd_dir is None:
        raise SchemaConfigMissing(
            "no XSD folder configured: set MEDLOOP_ERESEPT_XSD_DIR to the folder holding "
            "eresept/ and felleskomponenter/ (default ../shared/reference/xsd)"
        )
    if not Path(xsd_dir).is_dir():
        raise SchemaConfigMissing(f"XSD folder {xsd_dir} does not exist (MEDLOOP_ERESEPT_XSD_DIR)")
    assert doc_type.schema is not None
    return Path(xsd_dir) / doc_type.schema


def load_schema(xsd_dir: Path, doc_type: DocumentType) -> etree.XMLSchema | None:
    """The compiled schema (cached per folder and file, per thread), or None when the folder
    lacks the file."""
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    key = (str(xsd_dir), doc_type.schema)
    if key in cache:
        return cache[key]
    path = schema_path(xsd_dir, doc_type).resolve()
    if not path.is_file():
        cache[key] = None
        return None
    parser = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities="internal")
    parser.resolvers.add(_LocalResolver(Path(xsd_dir).resolve()))
    try:
        schema = etree.XMLSchema(etree.parse(str(path), parser))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError, OSError) as exc:
        raise SchemaConfigMissing(f"the schema {path} cannot be read: {exc}") from None
    cache[key] = schema
    return schema


def violations(schema: etree.XMLSchema, target, *, source: str, where: str | None) -> list[Problem]:
    """Every violation of ``target`` (a tree or one element of it) against ``schema``."""
    if schema.validate(target):
        return []
    return [
        Problem("schema-violation", error.message, source, error.line, error.column or None, where)
        for error in schema.error_log
        if error.level_name in ("ERROR", "FATAL")
    ]
