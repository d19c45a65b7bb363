"""Multidose (``multidose``, dose-bag packing), pure decisions in one module per concern:

- ``responsibility`` — the patient's multidose doctor and pharmacy (M27.1) and who may act;
- ``periods`` — packing periods with their order deadline (``bestillingsfrist``), urgent packs
  (``hastepakk``) and the list a period is packed from;
- ``rules`` — the configurable packing rules and the classes of discrepancy (``LineClass``);
- ``plan`` — which entries go into bags and when, and the production plan of a period;
- ``reconciliation`` — what the pharmacy packed (M25.3) classified against the list;
- ``tasks`` — the multidose doctor's tasks from a reconciliation, and their resolution;
- ``proposals`` — pharmacy proposals (M25.2) that only a prescriber can accept;
- ``errors`` — the ``MultidoseError`` family.

Import each name from the module that owns it. The loop (``medloop.loop.multidose``) loads the
records and stores what these functions decide; it reads the packing rules from
``medloop/rules/multidose.json`` (``medloop.loop.multidose.load_packing_rules``).
"""
