"""Hostile XML documents for the e-prescription tests: entity attacks the reader must refuse
at the DOCTYPE, before any entity is expanded."""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE MsgHead [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"><MsgInfo><MsgId>&xxe;</MsgId></MsgInfo></MsgHead>
"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24">&lol9;</MsgHead>
"""
