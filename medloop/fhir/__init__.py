"""The FHIR R4 (4.0.1) face of the engine, mounted at ``/fhir``: translation only.

``resources`` turns the engine's values (patients, list entry versions, prescriptions,
dispenses, stored alerts, the access log, catalogue drugs) into FHIR resources as plain JSON;
``search`` reads the standard search parameters and pages the answers into Bundles;
``outcome`` answers every error under ``/fhir`` as an ``OperationOutcome``; ``capability``
states what is supported (and is held against the routes by a test); ``router`` wires it
all through the JSON API's caller, policy and audit. Nothing here decides: the engine's
queries and commands do.
"""
