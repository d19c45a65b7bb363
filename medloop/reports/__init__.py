"""Quality reports (issue #19): read-only queries over the store, aggregation into typed
reports (``ward``, ``prescriber``, ``pharmacy``), the tables behind them and their charts
(``charts``: server-side SVG, CSV). Nothing here writes or decides."""
