"""The HTTP API (FastAPI): one router per actor (GP, pharmacy, nursing home, patient), the
catalogue, CDS Hooks services, bearer-token authentication, the role × action policy and RFC 9457
problem documents.

Routes are thin: parse → authorise → call a command of ``medloop.loop`` or a read of
``medloop.queries`` → render. ``create_app`` in ``app`` assembles everything.
"""
