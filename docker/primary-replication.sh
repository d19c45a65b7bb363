#!/bin/sh
# Run once by the postgres image when it creates the primary's data folder: allow streaming
# replication connections (password-authenticated) for the replica service.
set -eu
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
