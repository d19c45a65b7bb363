"""The individual checks. Each is a pure function from a ``CheckContext`` to alerts."""
