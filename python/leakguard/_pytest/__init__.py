"""The pytest plugin: markers, a fixture and options that fail a test whose
memory grows, naming the line that allocated it and what holds it.

Registered through the ``pytest11`` entry point as ``leakguard`` (disable with
``-p no:leakguard``). ``plugin`` holds the hooks; ``plan`` turns markers and
options into what to check per test; ``measure`` runs a test under its plan;
``sizes`` reads memory sizes; ``reporting`` writes failures and the summary.
"""
