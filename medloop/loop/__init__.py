"""The loop: the commands that change a patient's medication list, prescriptions and dispenses.

One module per command family, each command one transaction through ``runner.run_command``
(or its one variant ``runner.run_work`` for ward set-up, registration and system work):

- ``patients`` — register a patient;
- ``prescribe`` — prescribe (new entry + prescription) and renew;
- ``change`` — add an entry without prescription, change dosage, hold, resume, discontinue
  (recalling its prescriptions), mark entered-in-error;
- ``dispense`` — lock and release a prescription, dispense with the closed-loop rules, annul a
  dispense;
- ``acknowledge`` — mark an alert handled for a patient;
- ``reconcile`` — record a reconciliation (``samstemming``) of the list;
- ``multidose`` — multidose responsibility, packing periods, production plans, reconciliation
  of packing reports with tasks for the prescriber, pharmacy proposals, ``flag_deadlines``;
- ``administration`` — a package: ``wards`` and ``admissions``, ``planning`` (planned doses,
  the jobs' ``roll_forward`` and ``mark_missed``), ``charting`` (given / not given / refused /
  held, PRN, witness, scan) and ``queries`` (the ward chart); ``scanning`` reads pack barcodes
  (GS1/EAN);
- ``catalogue`` — the catalogue handle: a version's knowledge, packages (by varenr and
  EAN/GTIN) and substitution groups, built once per version;
- ``expire`` — expire prescriptions past their validity (the scheduled job's command).
"""
