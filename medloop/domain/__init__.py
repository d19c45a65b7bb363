"""medloop's domain model: pure Python values and decisions, no database, web or I/O.

One module per concern:

- ``patient`` — the patient, national id (mod-11), weight, renal function, allergies/CAVE;
- ``personnel`` — organisations, health personnel (HPR), ``Actor``;
- ``drug_reference`` — what an entry names: a resolved FEST reference or a non-catalogue item;
- ``entry`` — one list entry version, its in-use and current-view rules;
- ``medication_list`` — the list, its commands, versions and replay;
- ``validity`` — prescription validity rules and ISO durations;
- ``prescription`` — prescriptions and their status transitions (7408);
- ``prescribing`` — prescribe, renew and discontinue across list and prescriptions;
- ``dispense`` — dispenses, annulments, tallies and the closed-loop ``check_dispensable``;
- ``reconciliation`` — reconciliation (``samstemming``) records;
- ``ward`` — nursing-home wards and admissions; ``administration`` — charting of doses given;
- ``multidose`` — a package: responsibility, packing periods, plan, reconciliation, tasks,
  proposals;
- ``state`` — ``PatientState``, everything the loop knows about one patient, and how one
  command's appends advance it;
- ``versioning`` — structured diffs; ``codes`` — code systems; ``errors`` — the base
  ``DomainError`` and the markers that cross families (each family's refusals are defined in
  its own module, or in its package's ``errors.py``).

The command layer loads state, calls these functions, and persists what they return.
"""
