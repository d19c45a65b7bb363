"""Charts drawn on the server as SVG (altair + vl-convert): they read plain values from the read
side and return markup plus the table behind the picture; no database, no HTTP."""
