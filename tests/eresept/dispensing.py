"""An M10 (dispensing report) built from the official example, for the tests of M10 in."""

from __future__ import annotations

import re
import uuid

from tests.eresept.messages import example, without_signature

OFFICIAL_RESEPT_ID = "c2883dc2-8eef-4b8e-a80f-167f858425f7"
FIRST = uuid.UUID("665e2a11-787a-4dac-aec1-16466a9838d1")  # entry 1 of the official M25.1
FIRST_VARENR = "090606"  # its drug once rewritten to the demo catalogue (with_demo_drugs)


def m10(
    prescription_id: uuid.UUID | str = FIRST,
    *,
    varenr: str = FIRST_VARENR,
    packages: str = "1.000",
    msg_id: str | None = None,
    batch: str | None = None,
    annuls: str | None = None,
) -> bytes:
    """The official M10 (unsigned) reporting ``packages`` of ``varenr`` against
    ``prescription_id``; ``batch`` adds a ``Batchnr``, ``annuls`` makes it an annulment of the
    M10 with that MsgId."""
    data = without_signature(example("M10"))
    data = data.replace(OFFICIAL_RESEPT_ID.encode(), str(prescription_id).encode())
    data = data.replace(b"<Varenr>541409</Varenr>", f"<Varenr>{varenr}</Varenr>".encode())
    data = data.replace(b"<Antall>1.000</Antall>", f"<Antall>{packages}</Antall>".encode())
    data = re.sub(
        rb"<MsgId>[^<]*</MsgId>", f"<MsgId>{msg_id or uuid.uuid4()}</MsgId>".encode(), data
    )
    after = b"<ByttereservasjonKunde>false</ByttereservasjonKunde>"
    extra = b""
    if annuls is not None:
        data = data.replace(b"<Annullering>false</Annullering>", b"<Annullering>true</Annullering>")
        extra += f"<AnnulleringsId>{annuls}</AnnulleringsId>".encode()
    if batch is not None:
        extra += f"<Batchnr>{batch}</Batchnr>".encode()
    return data.replace(after, after + extra)
