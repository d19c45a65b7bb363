"""An M9.x answer (a whole message base64-encoded in ``Content/Base64Container``), built for
the tests: no ER-M9 example or schema is in ../shared; the M9 document element is a stand-in."""

from __future__ import annotations

import base64
import uuid

from tests.eresept.importing import PATIENT

M912_NS = "http://www.kith.no/xmlstds/eresept/m912/2013-10-08"


def answer(carried: bytes, *, type_code: str = "ERM912", msg_id: str | None = None) -> bytes:
    """An M9.x answer from the prescription intermediary carrying ``carried`` (whole message
    bytes) base64-encoded, with its own M9 document beside it."""
    payload = base64.b64encode(carried).decode()
    return f"""<?xml version="1.0" encoding="utf-8"?>
<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24">
  <MsgInfo>
    <Type V="{type_code}" DN="Nedlasting"/>
    <MIGversion>v1.2 2006-05-24</MIGversion>
    <GenDate>2019-07-18T10:00:00</GenDate>
    <MsgId>{msg_id or uuid.uuid4()}</MsgId>
    <Sender>
      <Organisation>
        <OrganisationName>Reseptformidleren</OrganisationName>
        <Ident><Id>80624</Id><TypeId V="HER" S="2.16.578.1.12.4.1.1.9051" DN="HER-id"/></Ident>
      </Organisation>
    </Sender>
    <Receiver>
      <Organisation>
        <OrganisationName>Virginia Legekontor</OrganisationName>
        <Ident><Id>8095068</Id><TypeId V="HER" S="2.16.578.1.12.4.1.1.9051" DN="HER-id"/></Ident>
      </Organisation>
    </Receiver>
    <Patient>
      <FamilyName>KNUTSEN</FamilyName>
      <GivenName>OTTAR</GivenName>
      <Ident><Id>{PATIENT}</Id><TypeId V="FNR" S="2.16.578.1.12.4.1.1.8116" DN="FNR"/></Ident>
    </Patient>
  </MsgInfo>
  <Document>
    <RefDoc>
      <MsgType V="XML" DN="XML-instans"/>
      <Content>
        <Nedlasting xmlns="{M912_NS}"><Status V="1" DN="OK"/></Nedlasting>
      </Content>
    </RefDoc>
  </Document>
  <Document>
    <RefDoc>
      <MsgType V="XML" DN="XML-instans"/>
      <Content>
        <Base64Container xmlns="http://www.kith.no/xmlstds/base64container">{payload}</Base64Container>
      </Content>
    </RefDoc>
  </Document>
</MsgHead>
""".encode()
